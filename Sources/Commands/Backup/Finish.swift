import Foundation
import MSBKit
import MSBBackupSet
import MSBSnapshot
import MSBDatabase
import MSBServices
import MSBArchive
import MSBPackages
import LibArchive
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// The end of a run: the manifest written as the archive's last member, services started when
/// they were stopped for the whole run, the sidecar, then the rename that makes the archive complete.
extension RunState {
    mutating package func finish(_ a: Archived, clock: Stopwatch) async throws -> BackupResult {
        if plan.stopForWholeRun {
            // Everything is read: start MAAS before the manifest, which then records the whole downtime.
            try await timer.time("start_services") { try await resumeServices() }
            downtimeMs = (window ?? clock).elapsedMs.ms2
        }
        let packages = await InstalledPackages.installed(root: config.root)
        var saved: [String: String]?, savedSums: [String: String]?
        if !pipeline.options.debsToSave.isEmpty {
            (saved, savedSums) = try saveDebs(pipeline.options.debsToSave, archiveName: a.name)
        }
        var manifest = Manifest(
            host: Self.hostName(), createdAt: ArchiveName.iso8601(a.now), reason: pipeline.options.reason,
            snapshotMethod: plan.methodSummary, root: config.root,
            paths: plan.items.map { .init(path: $0.path, method: $0.method, volume: $0.volume?.identity) },
            exclude: config.exclude, maasPackages: packages,
            maasVersion: MaasPackages.version(in: packages),
            database: .init(serverVersion: plan.database.serverVersion, scope: target.scope.rawValue,
                            databases: plan.database.databases, maasDatabase: target.maasDatabase,
                            snapshotIDs: a.facts.ids, schemaHead: a.facts.head, rowCounts: a.facts.counts),
            window: .init(quiesce: plan.quiesce.rawValue, servicesStopped: stopped, servicesFrozen: frozen, downtimeMs: downtimeMs, steps: steps),
            files: a.files, dump: a.dump, savedDebs: saved, savedDebsSha256: savedSums)
        (manifest.maasId, manifest.otherRegions, manifest.vaultUrl) = (plan.maasId, plan.otherRegions.isEmpty ? nil : plan.otherRegions, plan.vaultUrl)
        manifest.images = a.images
        let manifestBytes = try manifest.encoded()
        guard let key = signingKey else { throw BackupError.failed("the run has no signing key") }
        let signature = try key.signature(of: manifestBytes)
        let builder = a.builder, mtime = Int64(a.now.timeIntervalSince1970)
        try await Blocking.run {
            try builder.addBytes(manifestBytes, header: EntryHeaderFactory.file("manifest.json", size: 0, mtime: mtime))
            try builder.addBytes(signature, header: EntryHeaderFactory.file(ManifestSignature.member, size: 0, mtime: mtime))
            try builder.finish()
        }
        var warnings: [String] = []
        if !builder.strippedSpecialBits.isEmpty {
            warnings.append("setuid/setgid bits left out of the archive (restore never sets them): "
                            + builder.strippedSpecialBits.joined(separator: ", "))
            log(.warning, "warning: " + warnings[0])
        }
        try FaultPoint.hit("manifest")
        try Interruption.check()

        let sidecar = BackupFiles(archive: a.final).sidecar
        do {
            try AtomicFile.write(manifestBytes, to: sidecar, mode: 0o600)
        } catch {
            throw BackupError(.cantCreate, "cannot write \(sidecar): \(error)")
        }
        guard rename(a.partial, a.final) == 0 else {
            let e = Errno(rawValue: errno)
            unlink(sidecar)
            throw BackupError(.cantCreate, "cannot rename \(a.partial): \(e)")
        }
        partialPath = nil
        chmod(a.final, 0o600)
        AtomicFile.syncFolder(config.destination)

        await cleanup()
        let size = Int64((try? FileManager.default.attributesOfItem(atPath: a.final)[.size] as? Int64) ?? 0)
        return BackupResult(status: "ok", archive: a.final, sizeBytes: size, snapshotMethod: plan.methodSummary,
                            quiesce: plan.quiesce.rawValue, servicesStopped: stopped, servicesFrozen: frozen, downtimeMs: downtimeMs, window: steps,
                            durationMs: clock.elapsedMs.ms2, reason: pipeline.options.reason, dryRun: false, plan: nil, warnings: warnings)
    }

    /// A name no archive (complete or partial) has yet: the next second when taken.
    package func uniqueArchiveName(host: String) -> String {
        var d = Date()
        while true {
            let n = ArchiveName.make(host: host, date: d)
            let files = BackupFiles(destination: config.destination, name: n)
            if !FileManager.default.fileExists(atPath: files.archive) && !FileManager.default.fileExists(atPath: files.partial) { return n }
            d = d.addingTimeInterval(1)
        }
    }

    /// Copies the .debs beside the archive; returns package -> `<name>.debs/<file>` and package -> SHA-256.
    package func saveDebs(_ debs: [String: String], archiveName: String) throws -> (paths: [String: String], sha256: [String: String]) {
        let folder = BackupFiles(destination: config.destination, name: archiveName).debs
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        var out: [String: String] = [:], sums: [String: String] = [:]
        for (pkg, src) in debs.sorted(by: { $0.key < $1.key }) {
            let dst = folder + "/" + (src as NSString).lastPathComponent
            _ = unlink(dst)
            sums[pkg] = try DebCopy.copy(src, to: dst)
            out[pkg] = (folder as NSString).lastPathComponent + "/" + (src as NSString).lastPathComponent
        }
        return (out, sums)
    }
}
