import Foundation
import MSBKit
import MSBSnapshot
import MSBDatabase
import MSBServices
import MSBArchive
import MSBPackages
import MSBRegion
import MSBPrune
#if canImport(Glibc)
import Glibc
#endif

/// What the run will do, decided in preflight without changing anything (`--dry-run` prints it).
public struct BackupPlan: Sendable, Codable {
    public struct Item: Sendable, Codable {
        /// The path as configured (on the MAAS host).
        public var path: String
        /// Where it is read from here (under `root`).
        public var livePath: String
        public var method: SnapshotMethod
        public var volume: Volume?
        public var sizeBytes: Int64
    }
    public var items: [Item]
    public var volumes: [Volume]
    /// The active MAAS units stopped for the window (empty when they are frozen).
    public var servicesToStop: [String]
    public var servicesInactive: [String]
    /// How MAAS is held still: `freeze` or `stop` (never `auto`: preflight decided).
    public var quiesce: Config.Quiesce = .stop
    /// Why preflight chose it (printed by --dry-run, in --json).
    public var quiesceReason = ""
    /// The active MAAS units frozen for the window (empty when they are stopped).
    public var servicesToFreeze: [String] = []
    public var database: DatabasePlan
    public var databaseTarget: String
    public var destination: String
    public var estimatedBytes: Int64
    public var freeBytes: Int64
    /// True with `--snapshot none`: the services stay stopped for the whole run.
    public var stopForWholeRun: Bool
    /// This host's maas_id; the maas_id of other regions connected to the database (README "Region layouts").
    public var maasId: String? = nil
    public var otherRegions: [String] = []
    /// regiond.conf's vault_url, when the region keeps its secrets in Vault.
    public var vaultUrl: String? = nil
    /// What the backup does not cover on this layout (printed, and in --json).
    public var warnings: [String] = []
    /// MAAS 3.5+ image files left out (`images`; synced ones by default), as the rows are now.
    public var imageFilesLeftOut: Int?
    public var imageBytesLeftOut: Int64?

    /// The units stopped or frozen for the window.
    public var servicesQuiesced: [String] { quiesce == .freeze ? servicesToFreeze : servicesToStop }

    public var methodSummary: String {
        let ms = Set(items.map(\.method.rawValue)).sorted()
        return ms.count == 1 ? ms[0] : ms.joined(separator: "+")
    }
}



