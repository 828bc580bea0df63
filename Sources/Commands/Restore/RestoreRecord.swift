import Foundation
import MSBKit
import MSBCopy

/// Every restore and rollback that got past its command line is recorded for `status` and the
/// metrics (RestoreMetrics, in state_dir/metrics.json), whatever its outcome; not a dry run, not
/// one cancelled at the prompt (nothing was attempted), not one refused for want of root.
public enum RestoreOutcomes {
    /// The error `begin` throws when the operator answers anything but yes.
    static package func cancelled(_ command: String) -> BackupError {
        BackupError.failed("\(command) cancelled; nothing was changed")
    }

    static package func isCancelled(_ error: any Error, command: String) -> Bool {
        (error as? BackupError).map { $0.code == .failed && $0.message == cancelled(command).message } ?? false
    }

    /// Runs `body` (a restore or a rollback) and records how it ended.
    public static func recording<T>(config: Config, command: String, log: LogSink?,
                                    downtimeMs: (T) -> Double?, _ body: () async throws -> T) async throws -> T {
        let clock = Stopwatch()
        do {
            let result = try await body()
            write(config: config, command: command, code: .success, seconds: clock.elapsedMs / 1000,
                  downtimeSeconds: downtimeMs(result).map { $0 / 1000 }, log: log)
            return result
        } catch {
            let code = (error as? BackupError)?.code ?? .failed
            if ![.usage, .noPermission].contains(code) && !isCancelled(error, command: command) {
                write(config: config, command: command, code: code, seconds: clock.elapsedMs / 1000, downtimeSeconds: nil, log: log)
            }
            throw error
        }
    }

    static func write(config: Config, command: String, code: ExitCode, seconds: Double, downtimeSeconds: Double?,
                      log: LogSink?) {
        if let w = RestoreMetrics.record(config: config, code: code, rollback: command == "rollback", seconds: seconds,
                                         downtimeSeconds: downtimeSeconds) {
            log?(.warning, "warning: " + w)
        }
    }
}
