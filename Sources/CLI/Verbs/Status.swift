import ArgumentParser
import Foundation
import MaasBackupCore

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the last backup, the last run of each kind, leftovers of interrupted runs, the config check and the hooks.",
        discussion: """
            Lists the last run of each kind (backup, pre-upgrade backup, copy, verify, prune, restore or rollback) \
            with its result and age. Exit status, the first that applies: 1 MAAS services a dead run left stopped \
            or frozen are still down (run `maas-snapshot-backup recover`), 2 the last backup run failed or was \
            partial, or the last verify failed, 78 the config does not load, 4 the newest backup is older than \
            status.max_backup_age_hours (default 36; 0: no bound) or there is none, else 0.
            """)

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await Output.run(global) {
            var config: Config?
            var problem: String?
            do { config = try Config.load(path: global.config) } catch { problem = "\(error)" }
            if let config { try TrustedFolder.check(config.stateDir, key: "state_dir") }
            let r = StatusCheck.run(config: config, configPath: global.config ?? Config.defaultPath, configError: problem)
            // Units a dead run left stopped or frozen and still down: exit 1 naming them.
            var down: [String] = []
            if r.leftovers.contains(where: { !$0.servicesStillStopped.isEmpty || !$0.servicesStillFrozen.isEmpty }),
               let systemctl = try? Systemctl() {
                down = await StatusCheck.servicesStillDown(r, services: systemctl)
            }
            defer {
                if !down.isEmpty {
                    Output.log(.error, "maas-snapshot-backup: error: MAAS services left stopped or frozen by a dead run: \(down.joined(separator: " ")); run `maas-snapshot-backup recover`")
                }
            }
            // Exit codes: StatusReport.exitCode (README, after the table of exit codes); the output is printed first.
            let exit = r.exitCode(servicesDown: !down.isEmpty)
            if global.json {
                Output.json(r)
                if exit != 0 { throw ArgumentParser.ExitCode(exit) }
                return
            }
            Self.printText(r)
            if exit != 0 { throw ArgumentParser.ExitCode(exit) }
        }
    }

    /// The report as text, one item a line.
    static func printText(_ r: StatusReport) {
        if let b = r.lastBackup {
            print("Last backup:   \(Human.time(b.createdAt)) UTC, \(b.reason), \(Human.bytes(b.sizeBytes)), \(b.verified ? "verified" : "not verified") (\(b.name))")
        } else {
            print("Last backup:   none in \(r.destination)")
        }
        print("Last result:   \(r.lastResult)")
        if let l = r.lastRun {
            print("Last run:      \(l.at), \(l.result)\(l.result == "ok" ? "" : " (exit \(l.exitCode))")")
        }
        if r.lastScheduledSuccessAt != nil || r.lastPreUpgradeSuccessAt != nil {
            print("Last success:  scheduled \(r.lastScheduledSuccessAt ?? "never"), pre-upgrade \(r.lastPreUpgradeSuccessAt ?? "never")")
        }
        if let v = r.lastVerified { print("Last verified: \(Human.time(v.createdAt)) UTC (\(v.name))") }
        if let v = r.lastVerify {
            print("Last verify:   \(v.at), \(v.result)\(v.result == "ok" ? "" : " (exit \(v.exitCode); last success \(r.lastVerifySuccessAt ?? "never"))")")
        }
        print("Backups:       \(r.backups) in \(r.destination), \(Human.bytes(r.totalBytes))")
        if r.maxBackupAgeHours > 0 {
            let age = r.newestBackupAgeSeconds.map { "the newest is \(Human.age($0)) old" } ?? "there is none"
            print("Backup age:    \(age) (bound \(r.maxBackupAgeHours) h, status.max_backup_age_hours)\(r.backupTooOld ? ": TOO OLD" : "")")
        }
        print("Last runs:")
        for run in r.lastRuns {
            let name = run.kind.replacingOccurrences(of: "_", with: "-") + ":"
            guard let at = run.at else {
                print("  \(name.padding(toLength: 20, withPad: " ", startingAt: 0))never\(run.detail.map { " (" + $0 + ")" } ?? "")")
                continue
            }
            let code = run.result == "ok" || run.exitCode == nil ? "" : " (exit \(run.exitCode!))"
            print("  \(name.padding(toLength: 20, withPad: " ", startingAt: 0))\(run.result)\(code), \(Human.age(run.ageSeconds ?? 0)) ago (\(Human.time(at)) UTC)\(run.detail.map { ", " + $0 } ?? "")")
        }
        for p in r.partialArchives { print("Partial:       \(p)") }
        if r.leftovers.isEmpty {
            print("Leftovers:     none")
        } else {
            for l in r.leftovers {
                var what: [String] = []
                if !l.servicesStillStopped.isEmpty { what.append("services stopped: \(l.servicesStillStopped.joined(separator: " "))") }
                if !l.servicesStillFrozen.isEmpty { what.append("services frozen: \(l.servicesStillFrozen.joined(separator: " "))") }
                if !l.snapshots.isEmpty { what.append("snapshots: \(l.snapshots.joined(separator: " "))") }
                if !l.files.isEmpty { what.append("files: \(l.files.joined(separator: " "))") }
                if let d = l.database { what.append("database: \(d)") }
                print("Leftover:      \(l.command) run \(l.runID) (PID \(l.pid), phase \(l.phase))\(what.isEmpty ? "" : ": " + what.joined(separator: "; ")) - run `maas-snapshot-backup recover`")
            }
        }
        if let repo = r.remoteRepository {
            if let c = r.lastCopy {
                print("Last copy:     \(Human.time(c.at)) UTC, \(c.status)\(c.archives.isEmpty ? "" : " (" + c.archives.joined(separator: ", ") + ")")\(c.scheduledAs.map { ", running as " + $0 } ?? "")\(c.error.map { ": " + $0 } ?? "") to \(repo)")
            } else {
                print("Last copy:     none yet to \(repo)")
            }
            if let ok = r.lastCopySuccessAt, r.lastCopy?.status != "ok" { print("Last good copy: \(Human.time(ok)) UTC") }
            if !r.copyPending.isEmpty { print("Copy pending:  \(r.copyPending.joined(separator: ", ")) (copied by the next copy or backup)") }
        }
        print("Config:        \(r.config.path): \(r.config.ok ? "ok" : r.config.problems.joined(separator: "; "))")
        print("Hooks:         apt \(r.aptHookInstalled ? "installed" : "not installed"), dpkg \(r.dpkgHookInstalled ? "installed" : "not installed")")
    }
}
