import Foundation
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
    public var servicesToStop: [String]
    public var servicesInactive: [String]
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

    public var methodSummary: String {
        let ms = Set(items.map(\.method.rawValue)).sorted()
        return ms.count == 1 ? ms[0] : ms.joined(separator: "+")
    }
}

/// The sum of file sizes below `path` (not following links), leaving out what `skip` names.
package func treeSize(_ path: String, skip: (String) -> Bool) -> Int64 {
    if skip(path) { return 0 }
    var st = stat()
    guard lstat(path, &st) == 0 else { return 0 }
    if (st.st_mode & S_IFMT) == S_IFDIR {
        var total: Int64 = 0
        for n in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] {
            total += treeSize(path + "/" + n, skip: skip)
        }
        return total
    }
    return (st.st_mode & S_IFMT) == S_IFREG ? Int64(st.st_size) : 0
}

package func isUnder(_ p: String, _ dir: String) -> Bool { p == dir || p.hasPrefix(dir == "/" ? "/" : dir + "/") }

package func formatBytes(_ n: Int64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var v = Double(n)
    var i = 0
    while v >= 1024 && i < units.count - 1 { v /= 1024; i += 1 }
    return i == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[i])
}
