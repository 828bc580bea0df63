import Foundation
import MSBKit
import MSBBackup
import MSBRestore
import MSBSnapshot
import MSBServices
import MSBDatabase
import MSBBackupSet
import MSBCopy
import MSBRemote
#if canImport(Glibc)
import Glibc
#endif

/// `status`: the last backup and how the last run ended, leftovers of killed runs, the config, the hooks.
public struct StatusReport: Sendable, Codable {
    public struct ConfigCheck: Sendable, Codable {
        public var path: String
        public var ok: Bool
        public var problems: [String]
        /// False when the file does not load (a bad key or value, not YAML, unreadable): `status` exits 78.
        public var loads = true
    }
    public struct Leftover: Sendable, Codable {
        public var journal: String
        public var command: String
        public var runID: String
        public var pid: Int32
        public var startedAt: String
        public var phase: String
        public var servicesStillStopped: [String]
        /// Units a killed backup froze and nothing thawed yet (the guard normally has).
        public var servicesStillFrozen: [String] = []
        public var snapshots: [String]
        public var files: [String]
        /// A restore's database step and its copies (what `recover` drops or swaps back).
        public var database: String? = nil
    }
    public var destination: String
    public var backups: Int
    public var totalBytes: Int64
    public var lastBackup: BackupEntry?
    /// "ok" (the newest run left a complete archive), "interrupted" (a run newer than the last
    /// archive left leftovers), "none" (no backup yet).
    public var lastResult: String
    public var lastVerified: BackupEntry?
    public var partialArchives: [String]
    public var leftovers: [Leftover]
    public var config: ConfigCheck
    public var aptHookInstalled: Bool
    public var dpkgHookInstalled: Bool
    /// The off-host copies: the repository (nil: no `remote:` section), the last copy (ok, failed,
    /// or scheduled after a pre-upgrade backup), the last success, the archives waiting for a retry.
    public var remoteRepository: String? = nil
    public var lastCopy: CopyState.Attempt? = nil
    public var lastCopySuccessAt: String? = nil
    public var copyPending: [String] = []
    /// The last backup run of any kind as the tool recorded it (state_dir/metrics.json; nil: none
    /// recorded yet), and the last success of each kind.
    public struct LastRun: Sendable, Codable {
        public var at: String
        /// ok, partial (exit 3: archive written, copy failed) or failed.
        public var result: String
        public var exitCode: Int
    }
    public var lastRun: LastRun? = nil
    public var lastScheduledSuccessAt: String? = nil
    public var lastPreUpgradeSuccessAt: String? = nil
    /// The last verify (by hand or the weekly timer; result ok or failed) and its last success.
    public var lastVerify: LastRun? = nil
    public var lastVerifySuccessAt: String? = nil
    /// The last backup run failed or was partial, or the last verify failed: `status` exits 2.
    public var lastRunFailed: Bool { lastRun.map { $0.result != "ok" } ?? false }
    public var lastVerifyFailed: Bool { lastVerify.map { $0.result != "ok" } ?? false }

    /// The last run of one kind, as the tool recorded it in state_dir.
    public struct RunSummary: Sendable, Codable, Equatable {
        /// backup (timer or by hand), pre_upgrade_backup (apt or dpkg hook), copy, verify, prune, restore (restore or rollback).
        public var kind: String
        /// ISO 8601 UTC time it ended (nil: never recorded).
        public var at: String?
        /// Seconds between `at` and the time `status` ran.
        public var ageSeconds: Int?
        /// ok, partial (exit 3), failed, scheduled (a copy running in the background) or never.
        public var result: String
        public var exitCode: Int?
        /// What kind of run: `deep` for a verify, `rollback` or `restore`, the archives a prune removed.
        public var detail: String?
    }
    /// The last run of every kind, in the order above.
    public var lastRuns: [RunSummary] = []
    /// Age of the newest backup in the destination (nil: none), and the bound (`status.max_backup_age_hours`; 0: none).
    public var newestBackupAgeSeconds: Int? = nil
    public var maxBackupAgeHours: Int = Config.StatusBounds().maxBackupAgeHours
    /// The newest backup is older than the bound, or there is none: `status` exits 4.
    public var backupTooOld: Bool {
        guard maxBackupAgeHours > 0 else { return false }
        guard let age = newestBackupAgeSeconds else { return true }
        return age > maxBackupAgeHours * 3600
    }

    /// `status`'s exit code (README, "Exit codes"), the first that applies: 1 MAAS services a dead
    /// run left stopped or frozen are still down (`servicesDown`), 2 the last backup run failed or was
    /// partial or the last verify failed, 78 the config does not load (then the destination, and so the
    /// backups' age, are the defaults' guess), 4 the newest backup is older than
    /// `status.max_backup_age_hours` (or there is none), else 0.
    public func exitCode(servicesDown: Bool) -> Int32 {
        if servicesDown { return 1 }
        if lastRunFailed || lastVerifyFailed { return 2 }
        if !config.loads { return ExitCode.config.rawValue }
        if backupTooOld { return 4 }
        return 0
    }
}

public enum StatusCheck {
    public static let aptHookFile = "/etc/apt/apt.conf.d/80maas-snapshot-backup"
    public static let dpkgHookFile = "/etc/dpkg/dpkg.cfg.d/maas-snapshot-backup"

    /// `config` is nil when it could not be loaded; `configError` says why.
    public static func run(config loaded: Config?, configPath: String, configError: String?, now: Date = Date()) -> StatusReport {
        let config = loaded ?? Config()
        var problems: [String] = []
        if let configError { problems.append(configError) }
        if loaded != nil {
            do { _ = try PostgresTarget.resolve(config) } catch { problems.append("\(error)") }
            for p in config.paths where !FileManager.default.fileExists(atPath: config.live(p)) {
                problems.append("\(config.live(p)) does not exist")
            }
            if let why = Privilege.notWritable(config.destination) { problems.append("the destination \(why)") }
            if Command.find("systemctl") == nil { problems.append("systemctl is not on PATH") }
        }
        let entries = Catalog.entries(destination: config.destination)
        let partials = ((try? FileManager.default.contentsOfDirectory(atPath: config.destination)) ?? [])
            .filter(BackupFiles.isPartial).sorted()
            .map { config.destination + "/" + $0 }
        var leftovers: [StatusReport.Leftover] = []
        for j in RunJournal.leftovers(stateDir: config.stateDir) {
            let r = j.record
            leftovers.append(.init(journal: j.path, command: r.command, runID: r.runID, pid: r.pid, startedAt: r.startedAt, phase: r.phase,
                                   servicesStillStopped: r.servicesRestarted ? [] : r.stoppedServices,
                                   servicesStillFrozen: r.servicesRestarted ? [] : (r.frozenServices ?? []),
                                   snapshots: r.snapshots.map(\.identity),
                                   files: [r.privateDir, r.partialArchive].compactMap { $0 }))
        }
        for j in RestoreJournal.leftovers(stateDir: config.stateDir) {
            let r = j.record
            leftovers.append(.init(journal: j.path, command: r.command, runID: r.runID, pid: r.pid, startedAt: r.startedAt, phase: r.phase,
                                   servicesStillStopped: r.servicesRestarted ? [] : r.stoppedServices, snapshots: [],
                                   files: (r.filesFinal ? [] : r.swaps.filter(\.asideDone).map(\.aside) + r.swaps.filter { $0.stageStarted == true }.compactMap(\.staging))
                                       + [r.privateDir].compactMap { $0 },
                                   database: r.database == .untouched ? nil
                                       : r.database.rawValue + ((r.databases ?? []).isEmpty ? "" : " (\((r.databases ?? []).map { "\($0.name) -> \($0.restoring), kept as \($0.previous)" }.joined(separator: "; ")))")))
        }
        let last = entries.first
        var result = last == nil ? "none" : "ok"
        if let newestLeft = leftovers.filter({ $0.command == "backup" }).map({ Catalog.parseTime($0.startedAt) ?? 0 }).max(),
           newestLeft >= (last?.time ?? 0) {
            result = "interrupted"
        }
        var report = StatusReport(
            destination: config.destination, backups: entries.count, totalBytes: entries.reduce(0) { $0 + $1.sizeBytes },
            lastBackup: last, lastResult: result, lastVerified: entries.first(where: { $0.verified }), partialArchives: partials,
            leftovers: leftovers, config: .init(path: configPath, ok: problems.isEmpty, problems: problems, loads: loaded != nil),
            aptHookInstalled: FileManager.default.fileExists(atPath: config.live(aptHookFile)),
            dpkgHookInstalled: FileManager.default.fileExists(atPath: config.live(dpkgHookFile)))
        let m = MetricsFile.load(stateDir: config.stateDir)
        let iso = { (t: Double?) -> String? in
            guard let t, t > 0 else { return nil }
            return ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: t))
        }
        if let at = iso(m["last_run_timestamp_seconds"]) {
            let code = Int(m["last_run_exit_code"] ?? 0)
            report.lastRun = .init(at: at, result: m["last_run_success"] == 1 ? "ok" : (code == Int(ExitCode.partial.rawValue) ? "partial" : "failed"), exitCode: code)
        }
        report.lastScheduledSuccessAt = iso(m["last_scheduled_success_timestamp_seconds"])
        report.lastPreUpgradeSuccessAt = iso(m["last_pre_upgrade_success_timestamp_seconds"])
        if let at = iso(m["last_verify_timestamp_seconds"]) {
            let code = Int(m["last_verify_exit_code"] ?? 0)
            report.lastVerify = .init(at: at, result: m["last_verify_success"] == 1 ? "ok" : "failed", exitCode: code)
        }
        report.lastVerifySuccessAt = iso(m["last_verify_success_timestamp_seconds"])
        report.maxBackupAgeHours = config.status.maxBackupAgeHours
        if let last, last.time > 0 { report.newestBackupAgeSeconds = max(0, Int(now.timeIntervalSince1970 - last.time)) }
        report.lastRuns = lastRuns(m, copy: config.remote == nil ? nil : CopyState.load(stateDir: config.stateDir), now: now)
        if let remote = config.remote {
            let copy = CopyState.load(stateDir: config.stateDir)
            report.remoteRepository = ResticErrorReporter.maskURLPassword(remote.repository)
            report.lastCopy = copy.last
            report.lastCopySuccessAt = copy.lastSuccessAt
            report.copyPending = copy.pending
        }
        return report
    }

    /// The last run of each kind from the tool's records: the metrics record (state_dir/metrics.json)
    /// for the backups, verify, prune and restore, the copy's own (remote-copy.json; nil: no `remote:`).
    static package func lastRuns(_ m: [String: Double], copy: CopyState?, now: Date) -> [StatusReport.RunSummary] {
        func summary(_ kind: String, _ prefix: String, detail: String? = nil) -> StatusReport.RunSummary {
            guard let t = m[prefix + "_timestamp_seconds"], t > 0 else { return .init(kind: kind, result: "never") }
            let code = Int(m[prefix + "_exit_code"] ?? 0)
            let result = code == 0 ? "ok" : code == Int(ExitCode.partial.rawValue) ? "partial" : "failed"
            return .init(kind: kind, at: iso(t), ageSeconds: max(0, Int(now.timeIntervalSince1970 - t)), result: result,
                         exitCode: code, detail: detail)
        }
        var runs = [summary("backup", "last_scheduled_run"), summary("pre_upgrade_backup", "last_pre_upgrade_run")]
        if let copy {
            if let last = copy.last, let t = Catalog.parseTime(last.at) {
                runs.append(.init(kind: "copy", at: last.at, ageSeconds: max(0, Int(now.timeIntervalSince1970 - t)), result: last.status,
                                  exitCode: last.status == "failed" ? Int(ExitCode.failed.rawValue) : last.status == "ok" ? 0 : nil,
                                  detail: last.archives.isEmpty ? nil : last.archives.joined(separator: ", ")))
            } else {
                runs.append(.init(kind: "copy", result: "never"))
            }
        } else {
            runs.append(.init(kind: "copy", result: "never", detail: "no remote: section"))
        }
        runs.append(summary("verify", "last_verify", detail: m["last_verify_deep"] == 1 ? "deep" : nil))
        runs.append(summary("prune", "last_prune", detail: m["last_prune_timestamp_seconds"].map { _ in "\(Int(m["last_prune_removed_archives"] ?? 0)) removed" }))
        runs.append(summary("restore", "last_restore", detail: m["last_restore_timestamp_seconds"].map { _ in m["last_restore_rollback"] == 1 ? "rollback" : "restore" }))
        return runs
    }

    static func iso(_ t: Double) -> String { ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: t)) }

    /// The units dead runs left stopped or frozen that really are still down now (a unit the
    /// guard has started or thawed since is not listed): `status` exits 1 naming them.
    public static func servicesStillDown(_ report: StatusReport, services: any ServiceManager) async -> [String] {
        let stopped = Array(Set(report.leftovers.flatMap(\.servicesStillStopped))).sorted()
        let frozen = Array(Set(report.leftovers.flatMap(\.servicesStillFrozen))).sorted()
        var down = await services.frozenUnits(frozen)
        if let active = try? await services.activeUnits(stopped) {
            down += stopped.filter { !active.contains($0) && !down.contains($0) }
        }
        return down
    }
}
