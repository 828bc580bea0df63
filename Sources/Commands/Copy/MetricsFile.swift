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
        ("downtime_seconds", "MAAS downtime of the last successful backup."),
        ("archive_bytes", "Size of the last successful backup archive."),
        ("duration_seconds", "Duration of the last successful backup."),
        ("pruned_archives", "Backups the retention removed after the last successful backup."),
    ]

    /// Every gauge of the file: the backup's, then the copy's, then verify's.
    static package var help: [(String, String)] { backupHelp + CopyMetrics.help + VerifyMetrics.help }

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
