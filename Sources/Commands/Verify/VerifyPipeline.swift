import Foundation
import MSBKit
import MSBArchive
import MSBDatabase
import MSBCopy

/// `verify ARCHIVE [--deep]`. Each verify of an archive in the destination is recorded for `status`
/// and the metrics (`last_verify_*`), whether it passed or not (a copy elsewhere is not this host's
/// backup: its verify is not recorded).
public enum VerifyPipeline {
    public static func run(archive: String, config: Config, deep: Bool, allowUnsigned: Bool = false, scratchDir: String? = nil,
                           log: LogSink? = nil) async throws -> VerifyReport {
        let source = try ArchiveVerifier.open(archive, config: config)
        let clock = Stopwatch()
        let inDestination = ((source.path as NSString).deletingLastPathComponent as NSString).standardizingPath
            == (config.destination as NSString).standardizingPath
        do {
            let report = try await verify(source, config: config, deep: deep, allowUnsigned: allowUnsigned, scratchDir: scratchDir, clock: clock, log: log)
            if inDestination { record(config: config, code: .success, deep: deep, seconds: clock.elapsedMs / 1000, log: log) }
            return report
        } catch {
            let code = (error as? BackupError)?.code ?? .failed
            if inDestination && code != .usage {
                record(config: config, code: code, deep: deep, seconds: clock.elapsedMs / 1000, log: log)
            }
            throw error
        }
    }

    /// The verify gauges in the tool's record and the metrics textfile (VerifyMetrics).
    static func record(config: Config, code: ExitCode, deep: Bool, seconds: Double, log: LogSink?) {
        let now = Date().timeIntervalSince1970
        let warning = MetricsFile.update(stateDir: config.stateDir, path: config.metricsTextfile) { v in
            VerifyMetrics.apply(code: code, deep: deep, seconds: seconds, now: now, to: &v)
        }
        if let warning { log?(.warning, "warning: " + warning) }
    }

    private static func verify(_ source: ArchiveSource, config: Config, deep: Bool, allowUnsigned: Bool, scratchDir: String?,
                               clock: Stopwatch, log: LogSink?) async throws -> VerifyReport {
        let path = source.path
        var manifest: Manifest
        var report: VerifyReport
        do {
            (manifest, report) = try await ArchiveVerifier.verify(source, config: config, allowUnsigned: allowUnsigned, checkInterrupted: { try Interruption.check() })
            if report.signedBy == "unsigned" {
                log?(.warning, "warning: \(path) is not signed; --allow-unsigned skipped the check that this host or a trusted key wrote its manifest")
            }
            if deep { report.deep = try await DeepVerify.run(archive: source.readPath, display: path, manifest: manifest, config: config, scratchDir: scratchDir, log: log) }
        } catch let e as BackupError where e.code == .dataError {
            VerifiedStamp.remove(archive: path)
            throw e
        }
        ArchiveVerifier.restoreSidecar(archive: path, manifest: manifest)
        report.stamp = VerifiedStamp.write(archive: path, sha256: report.sha256, deep: deep, opened: source.status)
        report.durationMs = clock.elapsedMs.ms2
        _ = manifest
        return report
    }
}

/// `verify ARCHIVE --with-remote` (the weekly maas-snapshot-backup-verify.service): the archive, then,
/// when the config has a `remote:` section, the restic repository on a sample (`restic check
/// --read-data-subset`), even when the archive failed, so that one run says how both sides are.
/// Without `remote:` it is the archive's verify alone.
public struct VerifyWithRemote: Sendable {
    public var local: VerifyReport?
    public var localError: BackupError?
    public var remote: RemoteVerifyReport?
    public var remoteError: BackupError?
    /// Whether the remote side was checked (false: no `remote:` section).
    public var remoteChecked: Bool { remote != nil || remoteError != nil }

    /// The archive's failure first (its own code), then the repository's; nil: both passed.
    public var firstError: BackupError? { localError ?? remoteError }

    public static func run(archive: String, config: Config, deep: Bool, allowUnsigned: Bool = false, scratchDir: String? = nil,
                           readDataSubset: String = "5%", log: LogSink? = nil,
                           checkRemote: (@Sendable (Config, String) async throws -> RemoteVerifyReport)? = nil) async -> VerifyWithRemote {
        var out = VerifyWithRemote()
        do {
            out.local = try await VerifyPipeline.run(archive: archive, config: config, deep: deep, allowUnsigned: allowUnsigned,
                                                     scratchDir: scratchDir, log: log)
        } catch {
            out.localError = error as? BackupError ?? BackupError.failed("\(error)")
        }
        guard config.remote != nil else {
            log?(.info, "no remote: section: only the local archive was verified")
            return out
        }
        log?(.info, "checking the off-host copies: restic check --read-data-subset \(readDataSubset)")
        do {
            let check = checkRemote ?? { c, subset in try await RemoteOperations(config: c).verify(readDataSubset: subset) }
            out.remote = try await check(config, readDataSubset)
        } catch {
            out.remoteError = error as? BackupError ?? BackupError.failed("\(error)")
        }
        return out
    }
}
