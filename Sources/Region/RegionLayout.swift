import Foundation
import MSBKit
import MSBDatabase
import MSBServices
import LibPQ

/// The probing half of the region layout: the snap, and the other regions connected to the database.
extension RegionLayout {
    static package let snapUnits = ["snap.maas.pebble", "snap.maas.supervisor"]

    /// Why this host's MAAS is the snap, or nil: /var/snap/maas under the root without a deb
    /// region's /etc/maas/regiond.conf, or a unit of the snap active.
    public static func snapReason(_ config: Config, services: (any ServiceManager)?) async -> String? {
        let snapDir = config.live("/var/snap/maas")
        if FileManager.default.fileExists(atPath: snapDir) && !FileManager.default.fileExists(atPath: config.live("/etc/maas/regiond.conf")) {
            return "\(snapDir) exists"
        }
        if let services, let active = try? await services.activeUnits(snapUnits), !active.isEmpty {
            return "\(active.joined(separator: " ")) is active"
        }
        return nil
    }

    /// The one-line refusal for a snap MAAS (exit 69).
    public static func snapError(_ reason: String, command: String) -> BackupError {
        BackupError.unavailable("MAAS is installed as a snap here (\(reason)): maas-snapshot-backup \(command) handles the deb-installed MAAS only",
                                hint: "use `snap save maas` (and `snap restore`) for the snap")
    }

    /// Throws the snap refusal when this host's MAAS is the snap.
    public static func refuseSnap(_ config: Config, services: (any ServiceManager)?, command: String) async throws {
        if let why = await snapReason(config, services: services) { throw snapError(why, command: command) }
    }

    /// A MAAS service of another region controller connected to the database.
    public struct Connection: Sendable, Codable, Equatable {
        /// The connection's application_name: maas-regiond-<maas_id> or maas-temporal-<maas_id>.
        public var applicationName: String
        public var maasId: String
        public var clientAddress: String?
        public var sessions: Int
        public var display: String { applicationName + (clientAddress.map { " from \($0)" } ?? "") }
    }

    /// MAAS connections (application_name maas-regiond-<id>, and maas-temporal-<id> from 3.5 on) of
    /// regions other than `ownID` in `database`, as MAAS names them (maasserver/djangosettings/settings.py,
    /// maasserver/regiondservices/temporal.py; "NO_ID" before a region has its maas_id). A region whose
    /// MAAS sets no application_name (older releases) is not seen.
    static package func otherRegions(target: PostgresTarget, database: String, passfile: String?, ownID: String?) throws -> [Connection] {
        let c = try target.connect(database: database, passfile: passfile)
        defer { c.finish() }
        let rows: [[String?]]
        do {
            rows = try c.exec("""
                SELECT application_name, coalesce(host(client_addr), ''), count(*) FROM pg_stat_activity
                WHERE datname = $1 AND pid <> pg_backend_pid()
                  AND (application_name LIKE 'maas-regiond-%' OR application_name LIKE 'maas-temporal-%')
                GROUP BY 1, 2 ORDER BY 1, 2
                """, [database]).rows
        } catch let e as PQError {
            throw BackupError.unavailable("cannot list the sessions on \(database): \(e.message)")
        }
        let own = ownID ?? "NO_ID"
        var out: [Connection] = []
        for row in rows {
            guard let app = row[0] else { continue }
            let id = app.hasPrefix("maas-regiond-") ? String(app.dropFirst(13)) : String(app.dropFirst(14))
            guard id != own else { continue }
            let addr = row[1].flatMap { $0.isEmpty ? nil : $0 }
            out.append(Connection(applicationName: app, maasId: id, clientAddress: addr, sessions: Int(row[2] ?? "1") ?? 1))
        }
        return out
    }

    /// The distinct maas_id values of `connections`, sorted.
    static package func ids(_ connections: [Connection]) -> [String] { Array(Set(connections.map(\.maasId))).sorted() }

    /// The line a backup prints when other regions share the database.
    static package func otherRegionsWarning(_ ids: [String]) -> String {
        "other region controllers use this database (maas_id \(ids.joined(separator: ", "))): the archive holds the whole database but the /etc/maas and /var/lib/maas of this host only; back those hosts up too"
    }
}
