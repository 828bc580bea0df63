import ArgumentParser
import Foundation
import MaasBackupCore
#if canImport(Glibc)
import Glibc
#endif

struct Restore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Restore MAAS (database, /etc/maas, /var/lib/maas) from an archive.",
        discussion: """
            Verifies the archive first and refuses a damaged one (exit 65) before changing anything; refuses a \
            backup of another MAAS major.minor than the installed one unless --force, and refuses while another \
            region controller is connected to the database unless --force-other-regions. While MAAS still \
            runs, loads dump.sql into a new <name>_restoring_<time> as the database's owner and checks it, and \
            extracts the archived files into staging folders beside the live ones (<path>.restoring-<UTC time>; \
            mount points: <path>/.maas-snapshot-backup/restoring-<UTC time>). Then stops the MAAS services \
            (PostgreSQL stays up) for renames only: the database swapped in by name (the previous one kept as \
            <name>_pre_restore_<time>, never dropped by the tool), the current folders moved aside to \
            <path>.pre-restore-<UTC time> (mount points: <path>/.maas-snapshot-backup/pre-restore-<UTC time>; \
            never deleted by the tool) and the staged ones into their place, excluded folders such as \
            boot-resources and the live MAAS 3.5+ image files (image-storage) carried over (renamed, never \
            copied or deleted); then starts the services and checks them and the schema head. Everything MAAS \
            wrote after the backup, until the stop, is gone. On any failure the staged copies are removed, the \
            previous folders and the previous database are put back and the services started. \
            When the installed MAAS differs from the backup's by its patch version only, `maas-region dbupgrade` \
            runs before the services start.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The archive: a path, or a name in the destination.")
    var archive: String?

    @Option(name: .long, help: "Restore a copy from the restic repository of remote: instead: a snapshot id (see list --remote), an archive name, or latest. Works on a fresh machine with only the tool, its config and the repository's password.")
    var fromRemote: String?

    @OptionGroup var flags: RestoreFlags

    func validate() throws {
        if (archive == nil) == (fromRemote == nil) { throw ValidationError("give either an archive or --from-remote SNAPSHOT|latest") }
    }

    @Flag(name: .long, help: "Restore over an installed MAAS of another major.minor version.")
    var force = false

    func run() async throws {
        try await Output.run(global) {
            var opts = try flags.options(what: "restore", json: global.json)
            opts.force = force
            Interruption.install()
            let config = try global.loadConfig()
            if let fromRemote {
                let r = try await RemoteRestore.run(config: config, options: opts, snapshot: fromRemote)
                if global.json { Output.json(r); return }
                print("Fetched copy \(r.fetched.snapshotId.prefix(8)) (\(r.fetched.archive)) from the repository; the fetched file is removed")
                printRestore(r.restore, verb: "Restored")
                return
            }
            guard let archive else { return }
            let r = try await RestorePipeline(config: config, options: opts).run(archive: archive)
            if global.json { Output.json(r); return }
            printRestore(r, verb: "Restored")
        }
    }
}

/// The flags restore and rollback share, and the RestoreOptions they make.
struct RestoreFlags: ParsableArguments {
    @Flag(name: .long, help: "Do not ask for confirmation (needed without a terminal).")
    var yes = false

    @Option(name: .long, help: "Seconds to wait for another run's lock.")
    var lockTimeout: Double = 30

    @Flag(name: .long, help: "Go on while other region controllers are connected to the database: their sessions are ended and their own files are not restored.")
    var forceOtherRegions = false

    @Flag(name: .long, help: "Accept an archive that is not signed (made before archives were signed): its members are still checked against its manifest, but not who wrote the manifest.")
    var allowUnsigned = false

    /// Asks for confirmation first (refused without a terminal and without --yes), unless a dry run.
    func options(what: String, json: Bool, dryRun: Bool = false) throws -> RestoreOptions {
        var opts = RestoreOptions()
        opts.confirm = dryRun ? nil : try Confirmation.make(yes: yes, what: what)
        opts.lockTimeout = lockTimeout
        opts.forceOtherRegions = forceOtherRegions
        opts.allowUnsigned = allowUnsigned
        if !json { opts.log = Output.sink }
        return opts
    }
}

func printRestore(_ r: RestoreResult, verb: String) {
    print("\(verb) from \(r.archive)")
    print("  backup:    \(Human.time(r.plan.createdAt)) UTC, \(r.plan.reason), MAAS \(r.plan.backupMaasVersion ?? "unknown")")
    print("  database:  \(r.database.tables) tables, \(r.database.rows) rows match the backup; schema head \(Human.head(r.database.schemaHead))")
    for p in r.plan.paths {
        print("  files:     \(p.live)" + (p.mode == "create" ? " (created)" : ", the previous one is in \(p.aside)"))
    }
    for (db, drop) in zip(r.previousDatabases, r.dropPreviousDatabases) {
        print("  database:  the previous one is kept as \(db); drop it when done: \(drop)")
    }
    print("  services:  \(r.servicesStarted.isEmpty ? "none were running" : r.servicesStarted.joined(separator: " ") + " active")")
    if !r.servicesInactiveByCondition.isEmpty {
        print("  services:  \(r.servicesInactiveByCondition.joined(separator: " ")) inactive: a Condition* of the unit does not hold yet (MAAS starts it once it has written its configuration)")
    }
    for l in r.servicesLeftToOwner {
        print("  services:  \(l.unit) left to \(l.owner), which starts it once it has written its configuration (\(l.activeState) now)")
    }
    if !r.servicesGone.isEmpty { print("  services:  \(r.servicesGone.joined(separator: " ")) no longer exist (their package is not installed): not started") }
    for line in r.images?.lines ?? [] { print("  images:    \(line)") }
    for w in r.warnings { print("  warning:   \(w)") }
    for x in r.plan.peers { print("  region:    \(x)") }
    print(String(format: "  duration:  %.1f s (MAAS down %.1f s; dump.sql loaded in %.1f s while MAAS ran)", r.durationMs / 1000, r.downtimeMs / 1000, r.loadMs / 1000))
    if let cmd = r.rackRegisterCommand {
        print("")
        print("The restored region secret differs from the one this host had: register each rack controller again with")
        print("  \(cmd)")
    }
}

/// The confirmation before restore or rollback changes anything.
enum Confirmation {
    /// nil with --yes; refuses (exit 64) without a terminal.
    static func make(yes: Bool, what: String) throws -> (@Sendable (RestorePlan) async -> Bool)? {
        if yes { return nil }
        guard isatty(STDIN_FILENO) == 1 else {
            throw BackupError(.usage, "\(what) replaces the MAAS database and files and needs confirmation, but there is no terminal",
                              hint: "give --yes to go ahead without asking")
        }
        return { plan in
            Output.prompt(describe(plan, what: what), newline: true)
            Output.prompt("Type 'yes' to \(what): ", newline: false)
            let answer = readLine(strippingNewline: true)?.trimmingCharacters(in: .whitespaces).lowercased()
            return answer == "yes"
        }
    }

    static func describe(_ p: RestorePlan, what: String) -> String {
        var lines = ["This \(what) will:"]
        lines.append("  - replace the databases \(p.databases.joined(separator: ", ")) on \(p.database) with the backup's (\(Human.time(p.createdAt)) UTC, \(p.reason))")
        if let d = p.databaseRestore {
            for n in d.databases {
                lines.append("    loaded into \(n.restoring) and checked while MAAS still runs; " + (n.existed ? "the current \(n.name) is kept as \(n.previous)" : "\(n.name) does not exist yet"))
            }
            lines.append("    as role \(d.role), psql as \(d.psqlRunsAs); free space: \(d.freeSpace)")
        }
        lines.append("  - then stop \(p.servicesToStop.isEmpty ? "(no MAAS service is active)" : p.servicesToStop.joined(separator: " ")) and swap the databases in;"
                     + " whatever MAAS writes until then is lost, as a restore means")
        for x in p.paths {
            lines.append("  - replace \(x.live) with the backup's copy" + (x.mode == "create" ? "" : "; the current one is kept in \(x.aside)")
                         + (x.carriedOver.isEmpty ? "" : " (\(x.carriedOver.joined(separator: ", ")) carried over)"))
        }
        if let u = p.dbUpgrade { lines.append("  - run maas-region dbupgrade: \(u)") }
        lines.append("  - start the services again and check them")
        for w in p.warnings where w != p.dbUpgrade { lines.append("  warning: \(w)") }
        for x in p.peers { lines.append("  other region: \(x)") }
        lines.append("  MAAS version: backup \(p.backupMaasVersion ?? "unknown"), installed \(p.installedMaasVersion ?? "unknown") (\(p.versionCheck))")
        return lines.joined(separator: "\n")
    }
}

extension Output {
    /// The confirmation's question: always shown (-q too), at `notice` on the journal.
    static func prompt(_ s: String, newline: Bool) {
        FileHandle.standardError.write(Data((JournalStream.prefixed(s, .notice) + (newline ? "\n" : "")).utf8))
    }
}
