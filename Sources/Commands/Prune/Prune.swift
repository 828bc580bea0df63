import Foundation
import MSBKit
import MSBBackupSet
#if canImport(Glibc)
import Glibc
#endif

/// What `prune` decided and did.
public struct PruneReport: Sendable, Codable {
    public struct Item: Sendable, Codable {
        public var archive: String
        public var createdAt: String
        public var reason: String
        public var sizeBytes: Int64
        /// Why it is kept or removed.
        public var why: String
    }
    public var dryRun: Bool
    public var keep: Int
    public var keepPreUpgrade: Int
    public var maxAgeDays: Int
    public var kept: [Item]
    public var removed: [Item]
    public var freedBytes: Int64
    /// Files or folders that could not be removed.
    public var errors: [String]
    /// MAAS 3.5+ image stores left in folders a restore moved aside, removed by max_age_days.
    public var removedImageStores: [LeftoverImageStores.Found]? = nil
}

/// `prune`: retention (BackupSet's Retention) on the destination, then the image stores restores
/// left in folders they moved aside.
public enum Prune {
    /// `lockHeld`: the caller (a backup) holds the run lock already.
    public static func run(config: Config, dryRun: Bool, lockTimeout: Double = 30, lockHeld: Bool = false) throws -> PruneReport {
        // Never alongside a backup that is writing into the destination.
        let lock = dryRun || lockHeld ? nil : try RunLock(path: config.lockFile, timeout: lockTimeout)
        defer { lock?.release() }
        let entries = Catalog.entries(destination: config.destination)
        let (keep, remove) = Retention.plan(entries, retention: config.retention)
        func item(_ x: (BackupEntry, String)) -> PruneReport.Item {
            .init(archive: x.0.archive, createdAt: x.0.createdAt, reason: x.0.reason, sizeBytes: x.0.sizeBytes, why: x.1)
        }
        var report = PruneReport(dryRun: dryRun, keep: config.retention.keep, keepPreUpgrade: config.retention.keepPreUpgrade,
                                 maxAgeDays: config.retention.maxAgeDays, kept: keep.map(item), removed: [], freedBytes: 0, errors: [])
        for x in remove {
            if dryRun { report.removed.append(item(x)); report.freedBytes += x.0.sizeBytes; continue }
            guard Retention.remove(BackupFiles(archive: x.0.archive), errors: &report.errors) else { continue }
            report.removed.append(item(x))
            report.freedBytes += x.0.sizeBytes
        }
        let stores = LeftoverImageStores.prune(config: config, dryRun: dryRun)
        if !stores.removed.isEmpty { report.removedImageStores = stores.removed }
        report.errors += stores.errors
        return report
    }
}
