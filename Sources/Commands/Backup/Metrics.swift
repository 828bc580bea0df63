import Foundation
import MSBKit
import MSBBackupSet
import MSBSnapshot
import MSBDatabase
import MSBServices
import MSBArchive
import MSBPackages
import MSBRegion
import MSBPrune
import MSBCopy
#if canImport(Glibc)
import Glibc
#endif

/// A node_exporter textfile (`metrics_textfile`), written after every backup run, failed ones
/// included, so that an alert can fire on a failure or on a success that is too old (README
/// "Monitoring"). Figures of the last success are carried over from the tool's own record
/// (MetricsFile, in state_dir) when a run fails; the file found at the path is never read.
package enum Metrics {
    package enum Outcome {
        case success(BackupResult)
        case failure(exitCode: Int32, durationMs: Double, reason: String = "manual")
    }

    /// The kind of a backup by its reason: `pre_upgrade` (the apt or dpkg hook) or `scheduled` (the timer or by hand).
    static package func kind(reason: String) -> String { BackupReason(recorded: reason) == .preUpgrade ? "pre_upgrade" : "scheduled" }

    static package func apply(_ outcome: Outcome, to v: inout [String: Double], now: Int) {
        v["last_run_timestamp_seconds"] = Double(now)
        switch outcome {
        case .success(let r):
            v["last_\(kind(reason: r.reason))_run_timestamp_seconds"] = Double(now)
            v["last_\(kind(reason: r.reason))_run_exit_code"] = r.failedSteps.isEmpty ? 0 : Double(ExitCode.partial.rawValue)
            // A partial run (the archive written, the off-host copy failed) is not a success for an alert.
            v["last_run_success"] = r.failedSteps.isEmpty ? 1 : 0
            v["last_run_exit_code"] = r.failedSteps.isEmpty ? 0 : Double(ExitCode.partial.rawValue)
            v["last_run_duration_seconds"] = r.durationMs / 1000
            v["last_success_timestamp_seconds"] = Double(now)
            v[BackupReason(recorded: r.reason) == .preUpgrade ? "last_pre_upgrade_success_timestamp_seconds" : "last_scheduled_success_timestamp_seconds"] = Double(now)
            v["downtime_seconds"] = r.downtimeMs / 1000
            v["archive_bytes"] = Double(r.sizeBytes)
            v["duration_seconds"] = r.durationMs / 1000
            v["pruned_archives"] = Double(r.pruned?.removed.count ?? 0)
        case .failure(let code, let ms, let reason):
            v["last_\(kind(reason: reason))_run_timestamp_seconds"] = Double(now)
            v["last_\(kind(reason: reason))_run_exit_code"] = Double(code)
            v["last_run_success"] = 0
            v["last_run_exit_code"] = Double(code)
            v["last_run_duration_seconds"] = ms / 1000
            v["last_failure_timestamp_seconds"] = Double(now)
        }
    }

    /// Records the run's gauges and rewrites the textfile; returns a warning when it cannot.
    @discardableResult
    static package func write(stateDir: String, path: String?, outcome: Outcome, now: Date = Date()) -> String? {
        MetricsFile.update(stateDir: stateDir, path: path) { apply(outcome, to: &$0, now: Int(now.timeIntervalSince1970)) }
    }
}
