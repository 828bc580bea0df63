import Foundation
import MSBKit
import MSBArchive
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

/// Retention (README "Retention"):
/// - ordinary backups: the newest `retention.keep` stay;
/// - pre-upgrade backups (reason starting with "pre-upgrade"): the newest `retention.keep_pre_upgrade` stay;
/// - any backup older than `retention.max_age_days` goes (0: no age limit);
/// - never removed: the newest backup, the newest verified backup and the newest pre-upgrade backup.
/// Archives without a readable sidecar manifest are never removed (their reason is unknown).
/// Removing a backup removes the archive, its sidecar, its `.verified` stamp and its `<name>.debs/` folder.
public enum Prune {
    public static func plan(_ entries: [BackupEntry], retention: Config.Retention, now: Date = Date())
        -> (keep: [(BackupEntry, String)], remove: [(BackupEntry, String)]) {
        let sorted = entries.sorted { a, b in a.time != b.time ? a.time > b.time : a.name > b.name }
        var protected: [String: String] = [:]
        if let n = sorted.first { protected[n.archive] = "newest backup" }
        if let v = sorted.first(where: { $0.verified }) { protected[v.archive] = protected[v.archive].map { $0 + ", newest verified" } ?? "newest verified backup" }
        if let p = sorted.first(where: { $0.hasManifest && $0.isPreUpgrade }) {
            protected[p.archive] = protected[p.archive].map { $0 + ", newest pre-upgrade" } ?? "newest pre-upgrade backup"
        }
        var ordinary = 0, preUpgrade = 0
        var keep: [(BackupEntry, String)] = [], remove: [(BackupEntry, String)] = []
        let maxAge = TimeInterval(retention.maxAgeDays) * 86400
        for e in sorted {
            let age = now.timeIntervalSince1970 - e.time
            let tooOld = retention.maxAgeDays > 0 && age > maxAge
            var why: String?
            var keepIt = false
            if let p = protected[e.archive] {
                keepIt = true; why = p
            } else if !e.hasManifest {
                keepIt = true; why = "no sidecar manifest: left alone"
            }
            if e.hasManifest && e.isPreUpgrade {
                preUpgrade += 1
                if !keepIt {
                    if tooOld { why = "older than max_age_days (\(retention.maxAgeDays))" }
                    else if preUpgrade <= retention.keepPreUpgrade { keepIt = true; why = "pre-upgrade \(preUpgrade) of keep_pre_upgrade \(retention.keepPreUpgrade)" }
                    else { why = "beyond keep_pre_upgrade (\(retention.keepPreUpgrade))" }
                }
            } else if e.hasManifest {
                ordinary += 1
                if !keepIt {
                    if tooOld { why = "older than max_age_days (\(retention.maxAgeDays))" }
                    else if ordinary <= retention.keep { keepIt = true; why = "\(ordinary) of keep \(retention.keep)" }
                    else { why = "beyond keep (\(retention.keep))" }
                }
            }
            if keepIt { keep.append((e, why ?? "kept")) } else { remove.append((e, why ?? "removed")) }
        }
        return (keep, remove)
    }

    /// `lockHeld`: the caller (a backup) holds the run lock already.
    public static func run(config: Config, dryRun: Bool, lockTimeout: Double = 30, lockHeld: Bool = false) throws -> PruneReport {
        // Never alongside a backup that is writing into the destination.
        let lock = dryRun || lockHeld ? nil : try RunLock(path: config.lockFile, timeout: lockTimeout)
        defer { lock?.release() }
        let entries = Catalog.entries(destination: config.destination)
        let (keep, remove) = plan(entries, retention: config.retention)
        func item(_ x: (BackupEntry, String)) -> PruneReport.Item {
            .init(archive: x.0.archive, createdAt: x.0.createdAt, reason: x.0.reason, sizeBytes: x.0.sizeBytes, why: x.1)
        }
        var report = PruneReport(dryRun: dryRun, keep: config.retention.keep, keepPreUpgrade: config.retention.keepPreUpgrade,
                                 maxAgeDays: config.retention.maxAgeDays, kept: keep.map(item), removed: [], freedBytes: 0, errors: [])
        for x in remove {
            if dryRun { report.removed.append(item(x)); report.freedBytes += x.0.sizeBytes; continue }
            let a = x.0.archive
            if unlink(a) != 0 && errno != ENOENT {
                report.errors.append("cannot remove \(a): \(Errno.last.description)")
                continue
            }
            for extra in [a + ".manifest.json", VerifiedStamp.path(for: a)] where unlink(extra) != 0 && errno != ENOENT {
                report.errors.append("cannot remove \(extra): \(Errno.last.description)")
            }
            let debs = Catalog.debsFolder(a)
            var st = stat()
            if lstat(debs, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR {
                do { try TreeRemover.remove(debs) } catch {
                    report.errors.append("cannot remove \(debs): \(error)")
                }
            }
            report.removed.append(item(x))
            report.freedBytes += x.0.sizeBytes
        }
        let stores = LeftoverImageStores.prune(config: config, dryRun: dryRun)
        if !stores.removed.isEmpty { report.removedImageStores = stores.removed }
        report.errors += stores.errors
        return report
    }
}
