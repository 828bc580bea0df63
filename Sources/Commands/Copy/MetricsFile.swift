import Foundation
import MSBKit
#if canImport(Glibc)
import Glibc
#endif

/// The node_exporter textfile (`metrics_textfile`), written from the tool's own record of the
/// gauges (`<state_dir>/metrics.json`, root's, 0600), never from what is found at the textfile's
/// path: its folder may belong to another user, who could put a symlink to a root-only file there.
/// The backup's gauges and the copy's are kept in that one record; each writer updates its own.
public enum MetricsFile {
    static package let prefix = "maas_snapshot_backup_"

    /// The backup's gauges, in the order written, with their help text.
    static package let backupHelp: [(String, String)] = [
        ("last_run_timestamp_seconds", "Time the last backup run ended."),
        ("last_run_success", "1 when the last backup run succeeded in full, 0 when it failed or was partial (exit 3: archive written, off-host copy failed)."),
        ("last_run_exit_code", "Exit code of the last backup run (0 ok, 3 partial, see the man page)."),
        ("last_run_duration_seconds", "Duration of the last backup run."),
        ("last_success_timestamp_seconds", "Time of the last successful backup of any kind (0: none yet)."),
        ("last_scheduled_success_timestamp_seconds", "Time of the last successful backup that was not a pre-upgrade one (timer or by hand; 0: none yet)."),
        ("last_pre_upgrade_success_timestamp_seconds", "Time of the last successful pre-upgrade backup (apt or dpkg hook; 0: none yet)."),
        ("last_failure_timestamp_seconds", "Time of the last failed backup run (0: none yet)."),
        ("last_scheduled_run_timestamp_seconds", "Time the last backup run that was not a pre-upgrade one ended, whatever its result (0: none yet)."),
        ("last_scheduled_run_exit_code", "Exit code of the last backup run that was not a pre-upgrade one."),
        ("last_pre_upgrade_run_timestamp_seconds", "Time the last pre-upgrade backup run ended, whatever its result (0: none yet)."),
        ("last_pre_upgrade_run_exit_code", "Exit code of the last pre-upgrade backup run."),
        ("downtime_seconds", "MAAS downtime of the last successful backup."),
        ("archive_bytes", "Size of the last successful backup archive."),
        ("duration_seconds", "Duration of the last successful backup."),
        ("pruned_archives", "Backups the retention removed after the last successful backup."),
    ]

    /// Every gauge of the file: the backup's, then the copy's, verify's, prune's and restore's.
    static package var help: [(String, String)] { backupHelp + CopyMetrics.help + VerifyMetrics.help + PruneMetrics.help + RestoreMetrics.help }

    public static func statePath(stateDir: String) -> String { Config.join(stateDir, "metrics.json") }

    /// The recorded values (empty when there is no record yet or it cannot be read).
    static package func load(stateDir: String) -> [String: Double] {
        guard let data = FileManager.default.contents(atPath: statePath(stateDir: stateDir)),
              let v = try? JSONDecoder().decode([String: Double].self, from: data) else { return [:] }
        return v
    }

    static package func render(_ values: [String: Double]) -> String {
        var text = "# HELP \(prefix)build_info The tool's version (always 1).\n# TYPE \(prefix)build_info gauge\n"
            + "\(prefix)build_info{version=\"\(ToolInfo.version)\"} 1\n"
        for (name, h) in help {
            let value = values[name] ?? 0
            let shown = value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
            text += "# HELP \(prefix)\(name) \(h)\n# TYPE \(prefix)\(name) gauge\n\(prefix)\(name) \(shown)\n"
        }
        return text
    }

    /// Applies `change` to the recorded values, saves them (always: `status` reads them), and writes the textfile (when `path` is set) from them
    /// (0644: node_exporter reads it; AtomicFile: a name planted in the folder is never followed).
    /// Returns a warning when it cannot.
    @discardableResult
    static package func update(stateDir: String, path: String?, _ change: (inout [String: Double]) -> Void) -> String? {
        var values = load(stateDir: stateDir)
        change(&values)
        do {
            try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let e = JSONEncoder()
            e.outputFormatting = [.sortedKeys]
            try AtomicFile.write(Array(try e.encode(values)), to: statePath(stateDir: stateDir), mode: 0o600)
        } catch {
            return "cannot record the metrics in \(statePath(stateDir: stateDir)): \(error)"
        }
        guard let path else { return nil }
        do { try AtomicFile.write(Array(render(values).utf8), to: path, mode: 0o644) } catch {
            return "cannot write the metrics textfile \(path): \(error)"
        }
        return nil
    }
}

/// The gauges of `verify` (by hand, or the weekly maas-snapshot-backup-verify.timer), in the same
/// record as the backup's: kept here with the record's other writers.
public enum VerifyMetrics {
    static package let help: [(String, String)] = [
        ("last_verify_timestamp_seconds", "Time the last verify of a local archive ended (0: none yet)."),
        ("last_verify_success", "1 when the last verify passed, 0 when it failed (a damaged archive: exit 65)."),
        ("last_verify_exit_code", "Exit code of the last verify."),
        ("last_verify_deep", "1 when the last verify was --deep (the dump loaded into a throwaway cluster)."),
        ("last_verify_duration_seconds", "Duration of the last verify."),
        ("last_verify_success_timestamp_seconds", "Time of the last verify that passed (0: none yet)."),
    ]

    static package func apply(code: ExitCode, deep: Bool, seconds: Double, now: Double, to v: inout [String: Double]) {
        v["last_verify_timestamp_seconds"] = now.rounded()
        v["last_verify_success"] = code == .success ? 1 : 0
        v["last_verify_exit_code"] = Double(code.rawValue)
        v["last_verify_deep"] = deep ? 1 : 0
        v["last_verify_duration_seconds"] = (seconds * 1000).rounded() / 1000
        if code == .success { v["last_verify_success_timestamp_seconds"] = now.rounded() }
    }
}

/// The gauges of `prune` (alone, or the retention after a backup), in the same record: `status`
/// shows the last one, the textfile exports them.
public enum PruneMetrics {
    static package let help: [(String, String)] = [
        ("last_prune_timestamp_seconds", "Time the last prune (the prune command or the retention after a backup) ended (0: none yet)."),
        ("last_prune_success", "1 when the last prune succeeded on every side, 0 when it failed (1) or its remote side failed (3)."),
        ("last_prune_exit_code", "Exit code of the last prune."),
        ("last_prune_removed_archives", "Backups the last prune removed from the destination."),
        ("last_prune_freed_bytes", "Bytes the last prune freed in the destination."),
        ("last_prune_success_timestamp_seconds", "Time of the last prune that succeeded (0: none yet)."),
    ]

    static package func apply(code: ExitCode, removed: Int, freedBytes: Int64, now: Double, to v: inout [String: Double]) {
        v["last_prune_timestamp_seconds"] = now.rounded()
        v["last_prune_success"] = code == .success ? 1 : 0
        v["last_prune_exit_code"] = Double(code.rawValue)
        v["last_prune_removed_archives"] = Double(removed)
        v["last_prune_freed_bytes"] = Double(freedBytes)
        if code == .success { v["last_prune_success_timestamp_seconds"] = now.rounded() }
    }

    /// Records a prune in state_dir (and the textfile when configured); returns a warning when it cannot.
    @discardableResult
    public static func record(config: Config, code: ExitCode, removed: Int, freedBytes: Int64, now: Date = Date()) -> String? {
        MetricsFile.update(stateDir: config.stateDir, path: config.metricsTextfile) {
            apply(code: code, removed: removed, freedBytes: freedBytes, now: now.timeIntervalSince1970, to: &$0)
        }
    }
}

/// The gauges of `restore` and `rollback` (not their dry runs), in the same record.
public enum RestoreMetrics {
    static package let help: [(String, String)] = [
        ("last_restore_timestamp_seconds", "Time the last restore or rollback ended (0: none yet)."),
        ("last_restore_success", "1 when the last restore or rollback succeeded, 0 when it failed (MAAS was put back as it was)."),
        ("last_restore_exit_code", "Exit code of the last restore or rollback."),
        ("last_restore_rollback", "1 when the last restore was a rollback (packages too), 0 for a restore."),
        ("last_restore_duration_seconds", "Duration of the last restore or rollback."),
        ("last_restore_downtime_seconds", "MAAS downtime of the last successful restore or rollback."),
        ("last_restore_success_timestamp_seconds", "Time of the last restore or rollback that succeeded (0: none yet)."),
    ]

    static package func apply(code: ExitCode, rollback: Bool, seconds: Double, downtimeSeconds: Double?, now: Double,
                              to v: inout [String: Double]) {
        v["last_restore_timestamp_seconds"] = now.rounded()
        v["last_restore_success"] = code == .success ? 1 : 0
        v["last_restore_exit_code"] = Double(code.rawValue)
        v["last_restore_rollback"] = rollback ? 1 : 0
        v["last_restore_duration_seconds"] = (seconds * 1000).rounded() / 1000
        if code == .success {
            v["last_restore_success_timestamp_seconds"] = now.rounded()
            if let downtimeSeconds { v["last_restore_downtime_seconds"] = (downtimeSeconds * 1000).rounded() / 1000 }
        }
    }

    /// Records a restore or rollback; returns a warning when it cannot.
    @discardableResult
    public static func record(config: Config, code: ExitCode, rollback: Bool, seconds: Double, downtimeSeconds: Double?,
                              now: Date = Date()) -> String? {
        MetricsFile.update(stateDir: config.stateDir, path: config.metricsTextfile) {
            apply(code: code, rollback: rollback, seconds: seconds, downtimeSeconds: downtimeSeconds, now: now.timeIntervalSince1970, to: &$0)
        }
    }
}
