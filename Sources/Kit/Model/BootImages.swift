import Foundation

/// MAAS 3.5+ keeps its boot images as files in /var/lib/maas/image-storage, each named by a row of
/// maasserver_bootresourcefile (its `sha256` in 3.5.0, its `filename_on_disk` from the 3.5 point
/// releases on). A file is `uploaded` when any resource using it was uploaded (or generated):
/// it exists nowhere else. It is `synced` when only resources synced from a boot source use it:
/// regiond downloads it again when it is missing (its start-up check drops the row's sync state).
public struct BootImageFile: Sendable, Codable, Equatable {
    public enum Kind: String, Sendable, Codable { case uploaded, synced }
    /// The file's name in the image store.
    public var name: String
    public var sha256: String
    public var size: Int64
    public var kind: Kind
    /// True when the archive holds the file.
    public var archived: Bool

    public init(name: String, sha256: String, size: Int64, kind: Kind, archived: Bool = false) {
        self.name = name
        self.sha256 = sha256
        self.size = size
        self.kind = kind
        self.archived = archived
    }
}

/// One row of maasserver_bootresourcefile joined to its resource: `kept` when the resource is not
/// synced (rtype 1 generated, 2 uploaded).
public struct BootImageRow: Sendable, Equatable {
    public var name: String
    public var sha256: String
    public var size: Int64
    public var kept: Bool
    public init(name: String, sha256: String, size: Int64, kept: Bool) {
        self.name = name
        self.sha256 = sha256
        self.size = size
        self.kept = kept
    }
}

/// The manifest's `images` section: what the image rows of the pinned snapshot said, and which
/// files the archive holds. Absent in archives of MAAS 3.4 (images were large objects in the
/// dump) and in archives written before it existed.
public struct BootImages: Sendable, Codable, Equatable {
    /// The image store, as the config writes paths.
    public static let storePath = "/var/lib/maas/image-storage"

    /// `images` of the config: uploaded, all or none.
    public var mode: String
    public var store: String
    public var files: [BootImageFile]

    public init(mode: String, store: String = BootImages.storePath, files: [BootImageFile]) {
        self.mode = mode
        self.store = store
        self.files = files
    }

    /// One entry per file name: uploaded when any row using it is kept (a file shared with an
    /// uploaded resource is uploaded). Sorted by name.
    public static func files(from rows: [BootImageRow]) -> [BootImageFile] {
        var byName: [String: BootImageFile] = [:]
        for r in rows {
            if var f = byName[r.name] {
                if r.kept { f.kind = .uploaded }
                byName[r.name] = f
            } else {
                byName[r.name] = BootImageFile(name: r.name, sha256: r.sha256, size: r.size, kind: r.kept ? .uploaded : .synced)
            }
        }
        return byName.values.sorted { $0.name < $1.name }
    }

    /// The names of `files` a backup in `mode` leaves out. A file no row names is never left out.
    public static func leftOut(_ files: [BootImageFile], mode: Config.Images) -> Set<String> {
        switch mode {
        case .all: return []
        case .none: return Set(files.map(\.name))
        case .uploaded: return Set(files.filter { $0.kind == .synced }.map(\.name))
        }
    }

    /// The files the archive does not hold: MAAS downloads the synced ones again; uploaded ones
    /// (with `images: none`) are lost on a fresh machine.
    public var notArchived: [BootImageFile] { files.filter { !$0.archived } }
    public var archivedBytes: Int64 { files.filter(\.archived).reduce(0) { $0 + $1.size } }
    public var leftOutBytes: Int64 { notArchived.reduce(0) { $0 + $1.size } }
}
