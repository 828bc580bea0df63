import Foundation
import MSBKit
import MSBSnapshot
import MSBDatabase
import MSBServices
import MSBArchive
import MSBPackages
import MSBRegion
import MSBExpire
import MSBCopy
#if canImport(Glibc)
import Glibc
#endif

/// A node_exporter textfile (`metrics_textfile`), written after every backup run, failed ones
/// included, so that an alert can fire on a failure or on a success that is too old (README
/// "Monitoring"). Figures of the last success are carried over from the previous file when a run fails.
package enum Metrics {
    package enum Outcome {
        case success(BackupResult)
        case failure(exitCode: Int32, durationMs: Double)
    }

    static package let prefix = "maas_snapshot_backup_"

    /// The gauges, in the order written, with their help text.
    static package let help: [(String, String)] = [
        ("last_run_timestamp_seconds", "Time the last backup run ended."),
        ("last_run_success", "1 when the last backup run succeeded, 0 when it failed."),
        ("last_run_exit_code", "Exit code of the last backup run (0 ok, 3 partial, see the man page)."),
        ("last_run_duration_milliseconds", "Duration of the last backup run."),
        ("last_success_timestamp_seconds", "Time of the last successful backup (0: none yet)."),
        ("last_failure_timestamp_seconds", "Time of the last failed backup run (0: none yet)."),
        ("downtime_milliseconds", "MAAS downtime of the last successful backup."),
        ("archive_bytes", "Size of the last successful backup archive."),
        ("duration_milliseconds", "Duration of the last successful backup."),
        ("pruned_archives", "Backups the retention removed after the last successful backup."),
    ] + CopyMetrics.help  // written by the copy itself, carried over here

    /// The values of the previous file, by gauge name without the prefix.
    static package func previous(_ path: String) -> [String: Double] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [:] }
        var out: [String: Double] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix(prefix) {
            let parts = line.split(separator: " ")
            if parts.count == 2, let v = Double(parts[1]) { out[String(parts[0].dropFirst(prefix.count))] = v }
        }
        return out
    }

    static package func render(_ outcome: Outcome, previous old: [String: Double], now: Int) -> String {
        var v = old
        v["last_run_timestamp_seconds"] = Double(now)
        switch outcome {
        case .success(let r):
            v["last_run_success"] = 1
            v["last_run_exit_code"] = r.failedSteps.isEmpty ? 0 : Double(ExitCode.partial.rawValue)
            v["last_run_duration_milliseconds"] = r.durationMs
            v["last_success_timestamp_seconds"] = Double(now)
            v["downtime_milliseconds"] = r.downtimeMs
            v["archive_bytes"] = Double(r.sizeBytes)
            v["duration_milliseconds"] = r.durationMs
            v["pruned_archives"] = Double(r.pruned?.removed.count ?? 0)
        case .failure(let code, let ms):
            v["last_run_success"] = 0
            v["last_run_exit_code"] = Double(code)
            v["last_run_duration_milliseconds"] = ms
            v["last_failure_timestamp_seconds"] = Double(now)
        }
        var text = ""
        for (name, h) in help {
            let value = v[name] ?? 0
            let shown = value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
            text += "# HELP \(prefix)\(name) \(h)\n# TYPE \(prefix)\(name) gauge\n\(prefix)\(name) \(shown)\n"
        }
        return text
    }

    /// Writes the file (mode 0644: node_exporter reads it) atomically; returns a warning when it cannot.
    @discardableResult
    static package func write(path: String, outcome: Outcome, now: Date = Date()) -> String? {
        let text = render(outcome, previous: previous(path), now: Int(now.timeIntervalSince1970))
        // 0644: node_exporter reads it. AtomicFile: a name planted in the textfile folder is never followed.
        do { try AtomicFile.write(Array(text.utf8), to: path, mode: 0o644) } catch {
            return "cannot write the metrics textfile \(path): \(error)"
        }
        return nil
    }
}
