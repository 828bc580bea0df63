import Foundation
import MSBKit
#if canImport(Glibc)
import Glibc
#endif

/// `<archive>.verified`: written by a successful `verify` (and by `restore`'s own verification),
/// read by `list`, `prune` and `status`. It holds the archive's size, mtime (to the nanosecond),
/// inode and SHA-256 at that time; an archive whose size, mtime or inode changed since (a copy
/// made in the same second included) counts as not verified. A failed verify removes the stamp.
/// Mode 0600, JSON. Stamps written before the nanosecond and inode fields are compared on size
/// and whole seconds only.
public struct VerifiedStamp: Sendable, Codable, Equatable {
    public var verifiedAt: String
    public var deep: Bool
    public var archiveSize: Int64
    public var archiveMtime: Int64
    public var archiveMtimeNsec: Int64?
    public var archiveInode: UInt64?
    public var sha256: String
    public var toolVersion: String

    public static let suffix = ".verified"

    public static func path(for archive: String) -> String { archive + suffix }

    /// Writes the stamp for `archive` atomically; returns its path, or nil when it cannot.
    /// `opened`: the fstat of the file that was verified (ArchiveSource), so that a file renamed over
    /// the archive's name meanwhile is not stamped as verified.
    @discardableResult
    static package func write(archive: String, sha256: String, deep: Bool, opened: stat? = nil) -> String? {
        var st = stat()
        guard stat(archive, &st) == 0 else { return nil }
        if let o = opened, o.st_ino != st.st_ino || o.st_dev != st.st_dev || o.st_size != st.st_size
            || o.st_mtim.tv_sec != st.st_mtim.tv_sec || o.st_mtim.tv_nsec != st.st_mtim.tv_nsec { return nil }
        // A deep stamp stays deep when a later plain verify of the same file passes.
        var wasDeep = false
        if let old = read(archive: archive), old.sha256 == sha256 { wasDeep = old.deep }
        let s = VerifiedStamp(verifiedAt: ArchiveName.iso8601(Date()), deep: deep || wasDeep, archiveSize: Int64(st.st_size),
                              archiveMtime: Int64(st.st_mtim.tv_sec), archiveMtimeNsec: Int64(st.st_mtim.tv_nsec),
                              archiveInode: UInt64(st.st_ino), sha256: sha256, toolVersion: ToolInfo.version)
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.sortedKeys, .prettyPrinted]
        guard let data = try? e.encode(s) else { return nil }
        let p = path(for: archive)
        guard (try? AtomicFile.write(Array(data) + [0x0A], to: p, mode: 0o600)) != nil else { return nil }
        return p
    }

    static package func remove(archive: String) {
        _ = unlink(path(for: archive))
    }

    static package func read(archive: String) -> VerifiedStamp? {
        guard let data = FileManager.default.contents(atPath: path(for: archive)) else { return nil }
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return try? d.decode(VerifiedStamp.self, from: data)
    }

    /// The stamp of `archive` when it still describes the file as it is now.
    public static func current(archive: String) -> VerifiedStamp? {
        guard let s = read(archive: archive) else { return nil }
        var st = stat()
        guard stat(archive, &st) == 0, Int64(st.st_size) == s.archiveSize, Int64(st.st_mtim.tv_sec) == s.archiveMtime else { return nil }
        if let ns = s.archiveMtimeNsec, ns != Int64(st.st_mtim.tv_nsec) { return nil }
        if let ino = s.archiveInode, ino != UInt64(st.st_ino) { return nil }
        return s
    }
}
