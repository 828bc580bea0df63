import Foundation
import PathNames
#if canImport(Glibc)
import Glibc
#endif

/// One archived file as the manifest records it.
/// A name (or link target) that is not valid UTF-8 is kept byte for byte in `path_b64` (and
/// `link_target_b64`), standard base64 of the raw bytes; `path` then holds its readable form with
/// each such byte as `\xHH` (for `list` and messages only). Both are absent for UTF-8 names, so
/// manifests of older versions read as before.
public struct FileRecord: Sendable, Codable, Equatable {
    public var path: String
    public var pathB64: String?
    public var type: EntryKind
    public var size: Int64
    /// Permission bits, octal text such as "0640".
    public var mode: String
    public var uid: Int64
    public var gid: Int64
    public var user: String?
    public var group: String?
    public var mtime: Int64
    public var sha256: String?
    public var linkTarget: String?
    public var linkTargetB64: String?

    public init(path: String, pathB64: String? = nil, type: EntryKind, size: Int64, mode: String, uid: Int64, gid: Int64,
                user: String?, group: String?, mtime: Int64, sha256: String?, linkTarget: String?, linkTargetB64: String? = nil) {
        self.path = path; self.pathB64 = pathB64; self.type = type; self.size = size; self.mode = mode
        self.uid = uid; self.gid = gid; self.user = user; self.group = group; self.mtime = mtime
        self.sha256 = sha256; self.linkTarget = linkTarget; self.linkTargetB64 = linkTargetB64
    }

    /// Decodes a record; `path_b64` must decode to bytes that are not UTF-8 and whose readable form
    /// is `path` (same for the link target), so checks made on `path` hold for the bytes.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        path = try c.decode(String.self, forKey: .path)
        pathB64 = try c.decodeIfPresent(String.self, forKey: .pathB64)
        type = try c.decode(EntryKind.self, forKey: .type)
        size = try c.decode(Int64.self, forKey: .size)
        mode = try c.decode(String.self, forKey: .mode)
        uid = try c.decode(Int64.self, forKey: .uid)
        gid = try c.decode(Int64.self, forKey: .gid)
        user = try c.decodeIfPresent(String.self, forKey: .user)
        group = try c.decodeIfPresent(String.self, forKey: .group)
        mtime = try c.decode(Int64.self, forKey: .mtime)
        sha256 = try c.decodeIfPresent(String.self, forKey: .sha256)
        linkTarget = try c.decodeIfPresent(String.self, forKey: .linkTarget)
        linkTargetB64 = try c.decodeIfPresent(String.self, forKey: .linkTargetB64)
        for (text, b64, key) in [(path, pathB64, CodingKeys.pathB64), (linkTarget ?? "", linkTargetB64, .linkTargetB64)] {
            guard let b64 else { continue }
            let decoded = PathBytes.unbase64(b64).map(PathBytes.split)
            guard let (readable, raw) = decoded, raw != nil, readable == text else {
                throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "does not match the readable name \(text)")
            }
        }
    }

    /// The same key as EntryHeader.key for the same name bytes.
    public var key: String { pathB64.map { "\u{0}" + $0 } ?? path }
    public var linkKey: String? { linkTarget.map { t in linkTargetB64.map { "\u{0}" + $0 } ?? t } }
    /// The raw bytes of the name.
    public var rawPath: [UInt8] { pathB64.flatMap(PathBytes.unbase64) ?? Array(path.utf8) }
}

/// The MAAS schema head: the newest maasserver Django migration, and alembic's version where it exists.
public struct SchemaHead: Sendable, Codable, Equatable {
    public var django: String?
    public var alembic: String?
    public init(django: String? = nil, alembic: String? = nil) {
        self.django = django
        self.alembic = alembic
    }
}

/// How the data of one backed-up path is frozen during the window.
public enum SnapshotMethod: String, Sendable, Codable, CaseIterable {
    case btrfs
    case lvm
    /// Copied into a private staging folder while the services are stopped (small paths only).
    case copy
    /// No freeze at all: read live while the services stay stopped for the whole run.
    case none
}

/// `verify --deep`: restores dump.sql into a throwaway PostgreSQL cluster (initdb and pg_ctl as the
/// postgres user, in a private temporary folder, unix socket only; checked to be that cluster by its
/// data_directory before anything is loaded) with the restore's loader (psql as postgres, every
/// meta-command refused) and compares per-table row counts and the schema head with the manifest.
/// The cluster and its folder are removed afterwards.
public struct DeepVerifyResult: Sendable, Codable {
    public var serverBinaries: String
    public var databases: [String]
    public var tables: Int
    public var rows: Int64
    public var schemaHead: SchemaHead
    public var expectedErrors: Int
    public var warnings: [String]
    public var durationMs: Double

    package init(serverBinaries: String, databases: [String], tables: Int, rows: Int64, schemaHead: SchemaHead, expectedErrors: Int, warnings: [String], durationMs: Double) {
        self.serverBinaries = serverBinaries
        self.databases = databases
        self.tables = tables
        self.rows = rows
        self.schemaHead = schemaHead
        self.expectedErrors = expectedErrors
        self.warnings = warnings
        self.durationMs = durationMs
    }
}
