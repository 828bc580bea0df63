import MSBKit
import MSBArchive

/// The files one backup has in the destination, named from its archive's path
/// (`<dest>/maas-backup-<host>-<time>.tar.gz`): what the backup writes, `list`, `status`, `prune`,
/// `copy` and `rollback` read, and `recover` cleans up.
public struct BackupFiles: Sendable, Equatable {
    /// The archive, complete: `<stem>.tar.gz`.
    public let archive: String

    public init(archive: String) { self.archive = archive }

    public init(destination: String, name: String) { self.init(archive: destination + "/" + name) }

    /// The archive's path without `.tar.gz`.
    public var stem: String {
        archive.hasSuffix(ArchiveName.suffix) ? String(archive.dropLast(ArchiveName.suffix.count)) : archive
    }

    /// The archive while it is written, renamed to `archive` at the end: `<stem>.tar.gz.partial`.
    public var partial: String { archive + ArchiveName.partialExtension }

    /// The sidecar copy of the manifest (`list` and `prune` read it): `<stem>.tar.gz.manifest.json`.
    public var sidecar: String { archive + ArchiveName.sidecarExtension }

    /// The stamp a successful verify leaves: `<stem>.tar.gz.verified`.
    public var verifiedStamp: String { VerifiedStamp.path(for: archive) }

    /// The `.deb` files a pre-upgrade backup saved (rollback installs them): `<stem>.debs/`.
    public var debs: String { stem + ".debs" }

    /// True for the name of a partial archive (`maas-backup-…tar.gz.partial`), the only files in
    /// the destination a failed backup leaves and recover removes.
    public static func isPartial(_ name: String) -> Bool {
        name.hasPrefix("maas-backup-") && name.hasSuffix(ArchiveName.partialSuffix)
    }
}
