import Foundation
import MSBKit
import MSBCopy

/// `prune`: the local retention, then (with `remote:`) the repository's; the result is recorded
/// for `status` and the metrics (PruneMetrics) unless it is a dry run.
public struct PruneOutcome: Sendable {
    public var local: PruneReport
    public var remote: RemotePruneReport?
    public var remoteError: BackupError?

    /// 1 when a local archive could not be removed, 3 when only the remote side failed, else 0.
    public var exitCode: ExitCode { !local.errors.isEmpty ? .failed : remoteError != nil ? .partial : .success }
}

public enum PruneRun {
    public static func run(config: Config, dryRun: Bool) async throws -> PruneOutcome {
        let local: PruneReport
        do {
            local = try Prune.run(config: config, dryRun: dryRun)
        } catch {
            if !dryRun { PruneMetrics.record(config: config, code: (error as? BackupError)?.code ?? .failed, removed: 0, freedBytes: 0) }
            throw error
        }
        var outcome = PruneOutcome(local: local)
        if config.remote != nil {
            do { outcome.remote = try await RemoteOperations(config: config).prune(dryRun: dryRun) } catch {
                outcome.remoteError = error as? BackupError ?? BackupError.failed("\(error)")
            }
        }
        if !dryRun { PruneMetrics.record(config: config, code: outcome.exitCode, removed: local.removed.count, freedBytes: local.freedBytes) }
        return outcome
    }
}
