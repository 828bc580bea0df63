import Foundation
import MSBKit
import MSBArchive
import MSBDatabase

/// `verify ARCHIVE [--deep]`.
public enum VerifyPipeline {
    public static func run(archive: String, config: Config, deep: Bool, allowUnsigned: Bool = false,
                           log: (@Sendable (String) -> Void)? = nil) async throws -> VerifyReport {
        let source = try ArchiveVerifier.open(archive, config: config)
        let path = source.path
        let clock = Stopwatch()
        var manifest: Manifest
        var report: VerifyReport
        do {
            (manifest, report) = try await ArchiveVerifier.verify(source, config: config, allowUnsigned: allowUnsigned, checkInterrupted: { try Interruption.check() })
            if report.signedBy == "unsigned" {
                log?("warning: \(path) is not signed; --allow-unsigned skipped the check that this host or a trusted key wrote its manifest")
            }
            if deep { report.deep = try await DeepVerify.run(archive: source.readPath, display: path, manifest: manifest, config: config, log: log) }
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
