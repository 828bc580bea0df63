import Foundation
import MSBKit
#if canImport(Glibc)
import Glibc
#endif

/// A MAAS 3.5+ image store a restore left in a folder it moved aside: after a rollback to a 3.4
/// backup (whose database has no image rows) the whole store, after a 3.5 restore the files the
/// archive brought too. Restore never deletes what it moved aside; `prune` (and the retention
/// after each backup) removes such an `image-storage` once its folder is older than
/// `retention.max_age_days` (0: never), and says so. The rest of the folder stays.
public enum LeftoverImageStores {
    public struct Found: Sendable, Codable, Equatable {
        public var path: String
        public var movedAsideAt: String
        public var sizeBytes: Int64
    }

    /// The `image-storage` folders in `<var/lib/maas>.pre-restore-<time>` and
    /// `<var/lib/maas>/.maas-snapshot-backup/pre-restore-<time>`, with their time.
    public static func find(config: Config) -> [(Found, Date)] {
        let live = config.live("/var/lib/maas")
        let parent = (live as NSString).deletingLastPathComponent, base = (live as NSString).lastPathComponent
        var out: [(Found, Date)] = []
        func add(_ folder: String, _ name: String, prefix: String) {
            guard name.hasPrefix(prefix) else { return }
            let stamp = String(name.dropFirst(prefix.count).prefix(16))
            let store = folder + "/" + name + "/image-storage"
            var st = stat()
            guard let date = ArchiveName.date(ofTimestamp: stamp), lstat(store, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { return }
            out.append((Found(path: store, movedAsideAt: ArchiveName.iso8601(date), sizeBytes: size(store)), date))
        }
        for n in ((try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? []).sorted() { add(parent, n, prefix: base + ".pre-restore-") }
        let own = live + "/.maas-snapshot-backup"
        for n in ((try? FileManager.default.contentsOfDirectory(atPath: own)) ?? []).sorted() { add(own, n, prefix: "pre-restore-") }
        return out
    }

    /// Removes the stores older than max_age_days (`dryRun`: only says which).
    public static func prune(config: Config, dryRun: Bool, now: Date = Date()) -> (removed: [Found], errors: [String]) {
        let days = config.retention.maxAgeDays
        guard days > 0 else { return ([], []) }
        var removed: [Found] = [], errors: [String] = []
        for (f, date) in find(config: config) where now.timeIntervalSince(date) > TimeInterval(days) * 86400 {
            if !dryRun {
                do { try FileManager.default.removeItem(atPath: f.path) } catch {
                    errors.append("cannot remove \(f.path): \(error.localizedDescription)")
                    continue
                }
            }
            removed.append(f)
        }
        return (removed, errors)
    }

    static func size(_ path: String) -> Int64 {
        var total: Int64 = 0
        let e = FileManager.default.enumerator(atPath: path)
        while let rel = e?.nextObject() as? String {
            var st = stat()
            if lstat(path + "/" + rel, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG { total += Int64(st.st_size) }
        }
        return total
    }
}
