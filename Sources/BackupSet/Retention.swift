import Foundation
import MSBKit
#if canImport(Glibc)
import Glibc
#endif

/// Retention (README "Retention"):
/// - ordinary backups: the newest `retention.keep` stay;
/// - pre-upgrade backups (BackupReason.preUpgrade): the newest `retention.keep_pre_upgrade` stay;
/// - any backup older than `retention.max_age_days` goes (0: no age limit);
/// - never removed: the newest backup, the newest verified backup and the newest pre-upgrade backup.
/// Archives without a readable sidecar manifest are never removed (their reason is unknown).
/// Removing a backup removes the archive, its sidecar, its `.verified` stamp and its `<name>.debs/` folder.
public enum Retention {
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

    /// Removes one backup: the archive, then its sidecar, its `.verified` stamp and its `.debs`
    /// folder. Returns false (and says why in `errors`) when the archive itself stays.
    public static func remove(_ files: BackupFiles, errors: inout [String]) -> Bool {
        let a = files.archive
        if unlink(a) != 0 && errno != ENOENT {
            errors.append("cannot remove \(a): \(Errno.last.description)")
            return false
        }
        for extra in [files.sidecar, files.verifiedStamp] where unlink(extra) != 0 && errno != ENOENT {
            errors.append("cannot remove \(extra): \(Errno.last.description)")
        }
        var st = stat()
        if lstat(files.debs, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR {
            do { try TreeRemover.remove(files.debs) } catch {
                errors.append("cannot remove \(files.debs): \(error)")
            }
        }
        return true
    }
}
