import Foundation
import MSBKit
import MSBArchive
#if canImport(Glibc)
import Glibc
#endif

/// One backup in the destination, as `list`, `prune`, `status` and `rollback` see it: read from the
/// sidecar `<archive>.manifest.json` (the archive itself is not opened).
public struct BackupEntry: Sendable, Codable {
    public var archive: String
    public var name: String
    public var createdAt: String
    public var reason: String
    public var sizeBytes: Int64
    public var maasVersion: String?
    public var host: String?
    public var verified: Bool
    public var verifiedAt: String?
    public var deepVerified: Bool
    /// False when the sidecar is missing or unreadable: the entry's details come from its name only.
    public var hasManifest: Bool
    /// .deb files saved beside it (pre-upgrade backups), by package.
    public var savedDebs: [String: String]?
    public var maasPackages: [String: String]?

    public var isPreUpgrade: Bool { BackupReason(recorded: reason) == .preUpgrade }

    /// Seconds since 1970 of createdAt (0 when unreadable).
    public var time: TimeInterval { Catalog.parseTime(createdAt) ?? 0 }
}

public enum Catalog {
    /// Backups in `destination`, newest first. Only names that pass ArchiveName.isArchive (never .partial).
    public static func entries(destination: String) -> [BackupEntry] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: destination) else { return [] }
        var out: [BackupEntry] = []
        for name in names where ArchiveName.isArchive(name) {
            let path = destination + "/" + name
            var st = stat()
            guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
            var e = BackupEntry(archive: path, name: name, createdAt: nameTime(name) ?? "", reason: "?", sizeBytes: Int64(st.st_size),
                                maasVersion: nil, host: nil, verified: false, verifiedAt: nil, deepVerified: false,
                                hasManifest: false, savedDebs: nil, maasPackages: nil)
            if let data = FileManager.default.contents(atPath: BackupFiles(archive: path).sidecar),
               let m = try? Manifest.decode(Array(data)) {
                e.createdAt = m.createdAt
                e.reason = m.reason
                e.maasVersion = m.maasVersion
                e.host = m.host
                e.hasManifest = true
                e.savedDebs = m.savedDebs
                e.maasPackages = m.maasPackages
            }
            if let s = VerifiedStamp.current(archive: path) {
                e.verified = true
                e.verifiedAt = s.verifiedAt
                e.deepVerified = s.deep
            }
            out.append(e)
        }
        return out.sorted { a, b in a.time != b.time ? a.time > b.time : a.name > b.name }
    }

    static package func parseTime(_ iso: String) -> TimeInterval? {
        ArchiveName.date(iso8601: iso)?.timeIntervalSince1970
    }

    /// The UTC time in an archive's name, as ISO 8601.
    static package func nameTime(_ name: String) -> String? {
        guard name.hasSuffix(ArchiveName.suffix) else { return nil }
        let base = name.dropLast(ArchiveName.suffix.count)
        guard let dash = base.lastIndex(of: "-") else { return nil }
        let stamp = String(base[base.index(after: dash)...])
        return ArchiveName.date(ofTimestamp: stamp).map(ArchiveName.iso8601)
    }

    /// The `<name>.debs/` folder of an archive.
    static package func debsFolder(_ archive: String) -> String { BackupFiles(archive: archive).debs }
}
