import ArgumentParser
import Foundation
import MaasBackupCore
#if canImport(Glibc)
import Glibc
#endif

@main
struct MaasSnapshotBackup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "maas-snapshot-backup",
        abstract: "Back up a MAAS region with the services stopped only for the snapshot instant.",
        discussion: """
            Backs up the PostgreSQL database, /etc/maas and /var/lib/maas (without boot-resources, and by \
            default without the MAAS 3.5+ image files synced from boot sources, which MAAS downloads again: \
            config key images: uploaded | all | none) into one tar.gz with a manifest, stopping the MAAS services only while Btrfs or LVM snapshots are taken and a \
            PostgreSQL snapshot is pinned; restores, verifies, lists and prunes those backups, and rolls back a \
            failed MAAS upgrade (database, files and package versions).

            CONFIGURATION: /etc/maas-snapshot-backup/config.yaml (every key optional; --config overrides). \
            The keys and their defaults: man maas-snapshot-backup.yaml (5).

            PACKAGE HOOKS: apt (/etc/apt/apt.conf.d/80maas-snapshot-backup) and dpkg \
            (/etc/dpkg/dpkg.cfg.d/maas-snapshot-backup) run a backup before a MAAS package is upgraded, \
            downgraded or removed, and keep the installed .debs beside it for `rollback`. A failed backup \
            stops the change (hook.on_failure: block) unless MAAS_SNAPSHOT_BACKUP_SKIP=1 is set.

            SCHEDULED BACKUPS: `systemctl enable --now maas-snapshot-backup.timer` (daily; the retention runs \
            after each backup). A failed run writes an alert-priority line to the journal and runs \
            /etc/maas-snapshot-backup/on-failure when it is executable; `journalctl -p err -u maas-snapshot-backup` \
            shows the errors (-q prints errors only, -v every step); metrics_textfile writes node_exporter metrics \
            after every run; `status` exits non-zero when a run failed or the newest backup is too old. \
            `systemctl enable --now maas-snapshot-backup-verify.timer`: weekly `verify latest --deep --with-remote` \
            (the restic repository on a sample too when remote: is set).

            OFF-HOST COPIES: with a remote: section (a restic repository), `copy` sends a backup there \
            (copy: after-backup: every backup; a pre-upgrade one in the background), `list --remote`, \
            `verify --remote`, `prune` and `restore --from-remote SNAPSHOT|latest` (a fresh machine needs only \
            the tool, its config and the repository password); `remote-init` creates the repository.

            FILES: /var/backups/maas-snapshot-backup/ (archives, kept when the package is purged), \
            /var/lib/maas-snapshot-backup/ (run journals), /run/maas-snapshot-backup/ (the run lock, apt run markers).

            EXIT STATUS: 0 ok, 1 failed (services started again, leftovers removed), 3 partial (the backup is \
            written, a later step such as the retention, the metrics or the off-host copy failed), 64 usage, 65 bad archive or hook \
            input, 69 unavailable, 73 cannot create output, 75 locked, 77 not root, 78 config; `status` also \
            2 (the last backup run or verify failed) and 4 (the newest backup is too old): see `status --help`.
            """,
        version: ToolInfo.version,
        subcommands: [Backup.self, ListCommand.self, Verify.self, Restore.self, Rollback.self, Prune.self,
                      Status.self, Recover.self, CopyToRemote.self, RemoteInit.self, KeyCommand.self, AptHook.self, DpkgHook.self, GuardCommand.self],
        defaultSubcommand: Backup.self
    )
}

struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "Configuration file (default /etc/maas-snapshot-backup/config.yaml).")
    var config: String?

    @Flag(name: .long, help: "Print one JSON object on stdout instead of a summary.")
    var json = false

    @Flag(name: [.customShort("q"), .long], help: "Print errors only on stderr (no progress, no warnings): for cron.")
    var quiet = false

    @Flag(name: [.customShort("v"), .long], help: "Print every step on stderr too (the window's steps with their times, restore's steps).")
    var verbose = false

    var verbosity: Verbosity { quiet ? .quiet : verbose ? .verbose : .normal }

    func validate() throws {
        if quiet && verbose { throw ValidationError("give either -q (--quiet) or -v (--verbose), not both") }
    }

    /// The config, with its `state_dir` checked (root's, not writable by others, nor any folder
    /// above it): every command refuses an untrusted one in one line before it does anything.
    func loadConfig() throws -> Config {
        let cfg = try Config.load(path: config)
        try TrustedFolder.check(cfg.stateDir, key: "state_dir")
        return cfg
    }
}

/// Syslog priorities for stderr when it is the journal (systemd sets JOURNAL_STREAM to the
/// device:inode of the stream it connected; see sd_journal_stream_fd(3) and systemd.exec(5)): each
/// line gets the priority its writer passed with it (LogLevel: `<2>` critical, `<3>` error, `<4>`
/// warning, `<6>` info, `<7>` a step), so that `journalctl -p err -u maas-snapshot-backup` finds
/// the failures. A terminal, apt's output or a pipe gets the lines as they are.
enum JournalStream {
    static let isJournal: Bool = {
        guard let v = ProcessInfo.processInfo.environment["JOURNAL_STREAM"] else { return false }
        let parts = v.split(separator: ":")
        var st = stat()
        guard parts.count == 2, let dev = UInt64(parts[0]), let ino = UInt64(parts[1]), fstat(STDERR_FILENO, &st) == 0 else { return false }
        return UInt64(st.st_dev) == dev && UInt64(st.st_ino) == ino
    }()

    /// Every line of `text` with the priority passed with it, on the journal; as it is elsewhere.
    static func prefixed(_ text: String, _ level: LogLevel) -> String {
        guard isJournal else { return text }
        return text.split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.isEmpty ? "" : "<\(level.rawValue)>\($0)" }.joined(separator: "\n")
    }
}

/// Prints results and errors; maps errors to the documented exit codes.
enum Output {
    static let isTerminal = isatty(STDERR_FILENO) == 1

    /// The version of the `--json` envelope: bumped when a field is renamed or removed, or changes meaning.
    static let jsonSchemaVersion = 1

    /// The command this process runs, as `--json` names it (the first argument that is a
    /// subcommand's name; `backup` when there is none, as the default subcommand).
    static let commandName: String = {
        let names = MaasSnapshotBackup.configuration.subcommands.map { $0.configuration.commandName ?? "" }
        return CommandLine.arguments.dropFirst().first { names.contains($0) } ?? "backup"
    }()

    /// One JSON object on stdout, in the envelope every command shares: `schema_version`,
    /// `command` and `status` (ok unless the result says otherwise: partial, dry-run, error), then
    /// the command's own fields.
    static func json<T: Encodable>(_ value: T) {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let d = try? e.encode(value) else { return }
        guard var object = (try? JSONSerialization.jsonObject(with: d)) as? [String: Any] else {
            print(String(decoding: d, as: UTF8.self))
            return
        }
        object["schema_version"] = jsonSchemaVersion
        object["command"] = commandName
        if object["status"] == nil { object["status"] = "ok" }
        guard let out = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else {
            print(String(decoding: d, as: UTF8.self))
            return
        }
        print(String(decoding: out, as: UTF8.self))
    }

    /// How much goes to stderr (`-q`, `-v`), set once by `run` from the command's global options.
    private final class Settings: @unchecked Sendable {
        private let lock = NSLock()
        private var value = Verbosity.normal
        var verbosity: Verbosity {
            get { lock.lock(); defer { lock.unlock() }; return value }
            set { lock.lock(); value = newValue; lock.unlock() }
        }
    }
    private static let settings = Settings()
    static var verbosity: Verbosity {
        get { settings.verbosity }
        set { settings.verbosity = newValue }
    }

    /// One message on stderr with the priority its writer chose (shown unless `-q` or `-v` leave it out).
    static func log(_ level: LogLevel, _ s: String) {
        guard verbosity.shows(level) else { return }
        FileHandle.standardError.write(Data((JournalStream.prefixed(s, level) + "\n").utf8))
    }

    /// What the core's pipelines log through.
    static let sink: LogSink = { level, line in Output.log(level, line) }

    struct ErrorJSON: Encodable { var status = "error"; var error: String; var exitCode: Int32 }

    /// Runs `body` with the command's global options (`--json`, `-q`, `-v`); prints an error as one
    /// line (or JSON) and exits with its code.
    static func run(_ global: GlobalOptions, _ body: () async throws -> Void) async throws {
        verbosity = global.verbosity
        try await run(json: global.json, body)
    }

    static func run(json: Bool, _ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let e as BackupError {
            if json { Output.json(ErrorJSON(error: e.description, exitCode: e.code.rawValue)) }
            log(.error, "maas-snapshot-backup: error: \(e.description)")
            throw ArgumentParser.ExitCode(e.code.rawValue)
        } catch let e as ArgumentParser.ExitCode {
            throw e
        } catch {
            if json { Output.json(ErrorJSON(error: "\(error)", exitCode: 1)) }
            log(.error, "maas-snapshot-backup: error: \(error)")
            throw ArgumentParser.ExitCode(1)
        }
    }

    /// A one-line progress bar on the terminal.
    final class Progress: @unchecked Sendable {
        private let lock = NSLock()
        private var last = 0.0
        func update(_ done: Int64, _ total: Int64) {
            lock.lock(); defer { lock.unlock() }
            let now = Date().timeIntervalSince1970
            guard now - last > 0.2 else { return }
            last = now
            let pct = total > 0 ? min(100, Int(Double(done) * 100 / Double(total))) : 0
            let width = 30
            let fill = pct * width / 100
            let bar = String(repeating: "#", count: fill) + String(repeating: ".", count: width - fill)
            FileHandle.standardError.write(Data(String(format: "\r  archiving [%@] %3d%% %8.1f MiB", bar, pct, Double(done) / 1048576).utf8))
        }
        func done() { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}

struct Backup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Take a backup (the default command).")

    @OptionGroup var global: GlobalOptions

    @Flag(name: .long, help: "Print the plan (what would be stopped, snapshotted, copied and archived) and change nothing.")
    var dryRun = false

    @Option(name: .long, help: "Why this backup is taken; recorded in the manifest.")
    var reason = "manual"

    @Option(name: .long, help: "How to freeze the data: auto, btrfs, lvm or none (none keeps MAAS stopped for the whole run).")
    var snapshot: Config.SnapshotChoice?

    @Option(name: .long, help: "How to hold MAAS still for the window: auto (freeze when every service can be frozen, else stop), freeze (systemd's cgroup freezer; crash-consistent) or stop (stop and start the services).")
    var quiesce: Config.Quiesce?

    @Option(name: .long, help: "Seconds to wait for another run's lock.")
    var lockTimeout: Double = 30

    @Option(name: .long, help: "When the system has been up for less than SECONDS, wait until it has (the daily unit's catch-up run after boot).")
    var afterBoot: Int?

    func run() async throws {
        try await Output.run(global) {
            let config = try global.loadConfig()
            if let afterBoot, !dryRun {
                Interruption.install()
                var log: LogSink?
                if !global.json { log = Output.sink }
                try await BootSettle.wait(seconds: afterBoot, log: log)
            }
            let result = try await runBackup(config: config, reason: reason, snapshot: snapshot, quiesce: quiesce, dryRun: dryRun,
                                             lockTimeout: lockTimeout, json: global.json)
            printResult(result, json: global.json)
            if !result.failedSteps.isEmpty {
                for w in result.failedSteps { Output.log(.warning, "maas-snapshot-backup: warning: \(w)") }
                throw ArgumentParser.ExitCode(MaasBackupCore.ExitCode.partial.rawValue)
            }
        }
    }
}

extension Config.SnapshotChoice: ExpressibleByArgument {}
extension Config.Quiesce: ExpressibleByArgument {}

func runBackup(config: Config, reason: String, snapshot: Config.SnapshotChoice?, quiesce: Config.Quiesce? = nil, dryRun: Bool,
               lockTimeout: Double, json: Bool) async throws -> BackupResult {
    Interruption.install()
    var opts = backupOptions(json: json)
    opts.reason = reason
    opts.snapshot = snapshot
    opts.quiesce = quiesce
    opts.dryRun = dryRun
    opts.lockTimeout = lockTimeout
    return try await BackupPipeline(config: config, options: opts).run()
}

/// What the command line gives every backup: its log on stderr, a progress bar on a terminal or
/// progress lines elsewhere (not with --json), and this executable for the dead-man guard.
func backupOptions(json: Bool) -> BackupOptions {
    Interruption.install()
    var opts = BackupOptions()
    opts.guardExecutable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
    if let exe = opts.guardExecutable { opts.copyCommand = CopyCommand(executable: exe, configPath: ConfigArgument.fromProcess()) }
    if !json { opts.log = Output.sink }
    if !Output.verbosity.showsProgress || json {
        // -q or --json: no progress.
    } else if Output.isTerminal {
        let bar = Output.Progress()
        opts.progress = { bar.update($0, $1) }
        opts.progressDone = { bar.done() }
    } else {
        // The journal, apt's output, cron: a line every 30 s or every tenth, not minutes of silence.
        let lines = ProgressLines { Output.log(.info, $0) }
        opts.progress = { lines.update($0, $1) }
    }
    return opts
}

func printResult(_ r: BackupResult, json: Bool) {
    if json { Output.json(r); return }
    if r.dryRun, let p = r.plan {
        print("Plan (dry run, nothing changed):")
        print("  database:  \(p.databaseTarget), PostgreSQL \(p.database.serverVersion), dump \(p.database.databases.joined(separator: ", "))")
        for i in p.items {
            print("  \(i.path): \(i.method.rawValue)\(i.volume.map { " (\($0.detail))" } ?? ""), \(i.sizeBytes) bytes")
        }
        let units = p.servicesQuiesced
        print("  \(p.quiesce == .freeze ? "freeze:" : "stop:  ")    \(units.isEmpty ? "(nothing active)" : units.joined(separator: " "))\(p.stopForWholeRun ? " for the whole run" : " for the window only")")
        print("  quiesce:   \(p.quiesce.rawValue): \(p.quiesceReason)")
        if p.quiesce == .freeze {
            print("             crash-consistent: what MAAS would find after a power cut at that instant (a file written after a commit may lag the database by one step); quiesce: stop for the documented procedure")
        }
        if !p.servicesInactive.isEmpty { print("  not active, left alone: \(p.servicesInactive.joined(separator: " "))") }
        print("  archive:   into \(p.destination), about \(p.estimatedBytes) bytes at most, \(p.freeBytes) bytes free")
        if let n = p.imageFilesLeftOut {
            print("  images:    \(n) boot image file(s) left out (\(Human.bytes(p.imageBytesLeftOut ?? 0))), by the config's images; MAAS downloads synced ones again")
        }
        for w in r.warnings { print("  warning:   \(w)") }
        return
    }
    print("Backup written: \(r.archive ?? "-")")
    print("  size:      \(r.sizeBytes) bytes")
    print("  method:    \(r.snapshotMethod)")
    if r.quiesce == "freeze" {
        print("  frozen:    \(r.servicesFrozen.isEmpty ? "nothing" : r.servicesFrozen.joined(separator: " "))")
    } else {
        print("  stopped:   \(r.servicesStopped.isEmpty ? "nothing" : r.servicesStopped.joined(separator: " "))")
    }
    // The volumes are synced before the window: not part of the downtime.
    let (before, inside) = (r.window.filter { $0.step.hasPrefix("sync ") }, r.window.filter { !$0.step.hasPrefix("sync ") })
    if !before.isEmpty {
        print("  synced:    \(before.map { "\($0.step.dropFirst(5)) \(String(format: "%.1f", $0.ms)) ms" }.joined(separator: ", ")) (before the window)")
    }
    print(String(format: "  downtime:  %.1f ms (%@)", r.downtimeMs, inside.map { "\($0.step) \(String(format: "%.1f", $0.ms))" }.joined(separator: ", ")))
    print(String(format: "  duration:  %.1f s", r.durationMs / 1000))
    if let p = r.pruned, !p.removed.isEmpty {
        print("  pruned:    \(p.removed.count) old backup(s), \(Human.bytes(p.freedBytes)) freed: \(p.removed.map { ($0.archive as NSString).lastPathComponent }.joined(separator: ", "))")
    }
    for w in r.warnings { print("  warning:   \(w)") }
    if let c = r.copy { printCopy(c, indent: "  ") }
}

/// The --config this process was given (also to apt-hook and dpkg-hook), absolute, for the copy
/// that a pre-upgrade backup runs detached; nil: the default file.
enum ConfigArgument {
    static func fromProcess() -> String? {
        let args = CommandLine.arguments
        var value: String?
        for (i, a) in args.enumerated() {
            if a == "--config", i + 1 < args.count { value = args[i + 1] }
            else if a.hasPrefix("--config=") { value = String(a.dropFirst(9)) }
        }
        guard let v = value else { return nil }
        return v.hasPrefix("/") ? v : FileManager.default.currentDirectoryPath + "/" + v
    }
}

struct GuardCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "guard", abstract: "Internal: the dead-man guard of a backup window.",
                                                    shouldDisplay: false)
    @Option var timeout: Int = 120
    @Flag(help: "Thaw the services (they were frozen) instead of starting them.") var thaw = false
    @Argument var services: [String] = []
    func run() async throws {
        let rc = await DeadManGuard.runGuard(services: services, thaw: thaw, timeoutSeconds: timeout)
        throw ArgumentParser.ExitCode(rc)
    }
}
