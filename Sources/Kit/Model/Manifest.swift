import Foundation

/// manifest.json: the archive's last member, and a copy beside the archive.
public struct Manifest: Sendable, Codable, Equatable {
    public static let currentFormat = 1

    public struct WindowStep: Sendable, Codable, Equatable {
        public var step: String
        public var ms: Double
        public init(step: String, ms: Double) { self.step = step; self.ms = ms }
    }

    public struct Window: Sendable, Codable, Equatable {
        /// "freeze" or "stop"; nil in manifests written before quiesce existed (they stopped).
        public var quiesce: String?
        /// The units stopped for the window (empty when they were frozen).
        public var servicesStopped: [String]
        /// The units frozen for the window (nil or empty when they were stopped).
        public var servicesFrozen: [String]?
        /// From the stop (freeze) command's start to the start (thaw) command's return.
        public var downtimeMs: Double
        public var steps: [WindowStep]

        package init(quiesce: String? = nil, servicesStopped: [String], servicesFrozen: [String]? = nil, downtimeMs: Double, steps: [WindowStep]) {
            self.quiesce = quiesce
            self.servicesStopped = servicesStopped
            self.servicesFrozen = servicesFrozen
            self.downtimeMs = downtimeMs
            self.steps = steps
        }
    }

    public struct Database: Sendable, Codable, Equatable {
        public var serverVersion: String
        public var scope: String
        public var databases: [String]
        public var maasDatabase: String
        public var snapshotIDs: [String: String]
        public var schemaHead: SchemaHead
        /// database -> "schema.table" -> rows, counted in the pinned snapshot.
        public var rowCounts: [String: [String: Int64]]

        package init(serverVersion: String, scope: String, databases: [String], maasDatabase: String, snapshotIDs: [String: String], schemaHead: SchemaHead, rowCounts: [String: [String: Int64]]) {
            self.serverVersion = serverVersion
            self.scope = scope
            self.databases = databases
            self.maasDatabase = maasDatabase
            self.snapshotIDs = snapshotIDs
            self.schemaHead = schemaHead
            self.rowCounts = rowCounts
        }
    }

    public struct PathRecord: Sendable, Codable, Equatable {
        public var path: String
        public var method: SnapshotMethod
        public var volume: String?

        package init(path: String, method: SnapshotMethod, volume: String? = nil) {
            self.path = path
            self.method = method
            self.volume = volume
        }
    }

    public var formatVersion = Manifest.currentFormat
    public var tool = "maas-snapshot-backup"
    public var toolVersion = ToolInfo.version
    public var host: String
    public var createdAt: String
    public var reason: String
    public var snapshotMethod: String
    public var root: String
    public var paths: [PathRecord]
    public var exclude: [String]
    public var maasPackages: [String: String]
    public var maasVersion: String?
    public var database: Database
    public var window: Window
    public var files: [FileRecord]
    public var dump: FileRecord
    /// .deb files saved beside the archive (pre-upgrade backups), by package name.
    public var savedDebs: [String: String]?
    /// SHA-256 of each saved .deb, by package name; rollback reinstalls only a .deb that matches.
    public var savedDebsSha256: [String: String]?
    /// This host's MAAS region id (/var/lib/maas/maas_id), when it has one.
    public var maasId: String?
    /// maas_id of the other region controllers connected to the database at backup time: their own
    /// /etc/maas and /var/lib/maas are not in this archive.
    public var otherRegions: [String]?
    /// regiond.conf's vault_url: MAAS keeps its secrets there, outside this archive (never the approle).
    public var vaultUrl: String?
    /// MAAS 3.5+ boot image files (image-storage): each one by sha256, uploaded or synced, archived
    /// or not (MAAS downloads the synced ones again). nil: MAAS 3.4, or an older archive.
    public var images: BootImages?

    public static func encoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return e
    }

    public static func decoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return d
    }

    public func encoded() throws -> [UInt8] { Array(try Manifest.encoder().encode(self)) + [0x0A] }

    public static func decode(_ bytes: [UInt8]) throws -> Manifest {
        do {
            let m = try decoder().decode(Manifest.self, from: Data(bytes))
            guard m.formatVersion == currentFormat else {
                throw BackupError.data("manifest format \(m.formatVersion) is not supported (this tool reads format \(currentFormat))",
                                       hint: "use the maas-snapshot-backup version that wrote it")
            }
            return m
        } catch let e as BackupError {
            throw e
        } catch {
            throw BackupError.data("manifest.json is not a valid manifest: \(error)")
        }
    }

    /// The MAAS major.minor, e.g. "3.4", from the version of maas-region-controller (or maas).
    public var maasMajorMinor: String? { maasVersion.flatMap(Manifest.majorMinor) }

    public static func majorMinor(_ debVersion: String) -> String? {
        var v = Substring(debVersion)
        if let colon = v.firstIndex(of: ":") { v = v[v.index(after: colon)...] }
        let parts = v.split(whereSeparator: { !$0.isNumber }).prefix(2)
        guard parts.count == 2 else { return nil }
        return "\(parts[0]).\(parts[1])"
    }

    package init(host: String, createdAt: String, reason: String, snapshotMethod: String, root: String, paths: [PathRecord], exclude: [String], maasPackages: [String: String], maasVersion: String? = nil, database: Database, window: Window, files: [FileRecord], dump: FileRecord, savedDebs: [String: String]? = nil, savedDebsSha256: [String: String]? = nil, maasId: String? = nil, otherRegions: [String]? = nil, vaultUrl: String? = nil) {
        self.host = host
        self.createdAt = createdAt
        self.reason = reason
        self.snapshotMethod = snapshotMethod
        self.root = root
        self.paths = paths
        self.exclude = exclude
        self.maasPackages = maasPackages
        self.maasVersion = maasVersion
        self.database = database
        self.window = window
        self.files = files
        self.dump = dump
        self.savedDebs = savedDebs
        self.savedDebsSha256 = savedDebsSha256
        self.maasId = maasId
        self.otherRegions = otherRegions
        self.vaultUrl = vaultUrl
    }
}


