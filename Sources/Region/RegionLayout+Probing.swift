import Foundation
import MSBKit
import MSBDatabase
import MSBServices
import LibPQ
#if canImport(Glibc)
import Glibc
#endif

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
        /// The connection's application_name: maas-regiond-<maas_id> or maas-temporal-<maas_id>
        /// (or whatever a session of the MAAS role from another address set, maybe nothing).
        public var applicationName: String
        /// From the application_name; "" for a region seen only by its address.
        public var maasId: String
        public var clientAddress: String?
        public var sessions: Int
        /// The MAAS version the region recorded in the database (maasserver_controllerinfo), if known.
        public var maasVersion: String? = nil
        public var display: String {
            (applicationName.isEmpty ? "a session of the MAAS role" : applicationName) + (clientAddress.map { " from \($0)" } ?? "")
                + (maasVersion.map { " (MAAS \($0))" } ?? "")
        }
        package init(applicationName: String, maasId: String, clientAddress: String?, sessions: Int, maasVersion: String? = nil) {
            self.applicationName = applicationName; self.maasId = maasId; self.clientAddress = clientAddress
            self.sessions = sessions; self.maasVersion = maasVersion
        }
        /// The maas_id, or "host <address>" for a region seen by its address only.
        public var label: String { maasId.isEmpty ? "host \(clientAddress ?? "?")" : maasId }
    }

    /// MAAS connections of regions other than `ownID` in `database`: by application_name
    /// (maas-regiond-<id>, and maas-temporal-<id> from 3.5 on, as MAAS names them in
    /// maasserver/djangosettings/settings.py and maasserver/regiondservices/temporal.py; "NO_ID"
    /// before a region has its maas_id), and by address: sessions of the database's owner (the MAAS
    /// role) from an address that is not this host's, which finds a region whose services set no
    /// application_name (maas-apiserver, maas-temporal-worker, older releases).
    static package func otherRegions(target: PostgresTarget, database: String, passfile: String?, ownID: String?) throws -> [Connection] {
        let c = try target.connect(database: database, passfile: passfile)
        defer { c.finish() }
        let rows: [[String?]]
        do {
            rows = try c.exec("""
                SELECT coalesce(a.application_name, ''), coalesce(host(a.client_addr), ''), count(*),
                       a.usename = (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1)
                FROM pg_stat_activity a
                WHERE a.datname = $1 AND a.pid <> pg_backend_pid()
                GROUP BY 1, 2, 4 ORDER BY 1, 2
                """, [database]).rows
        } catch let e as PQError {
            throw BackupError.unavailable("cannot list the sessions on \(database): \(e.message)")
        }
        var out = classify(rows.map { (app: $0[0] ?? "", address: $0[1] ?? "", sessions: Int($0[2] ?? "1") ?? 1, maasRole: $0[3] == "t") },
                           ownID: ownID, localAddresses: localAddresses())
        // What each region recorded as its version (best effort: the table is MAAS's).
        let ids = out.map(\.maasId).filter { !$0.isEmpty }
        if !ids.isEmpty, let v = try? c.exec("""
            SELECT n.system_id, ci.version FROM maasserver_node n JOIN maasserver_controllerinfo ci ON ci.node_id = n.id
            WHERE n.system_id = ANY($1::text[])
            """, ["{" + ids.joined(separator: ",") + "}"]).rows {
            let versions = Dictionary(v.compactMap { r in r[0].flatMap { id in r[1].map { (id, $0) } } }, uniquingKeysWith: { a, _ in a })
            for i in out.indices { out[i].maasVersion = versions[out[i].maasId].flatMap { $0.isEmpty ? nil : $0 } }
        }
        return out
    }

    /// The sessions that belong to other regions (pure: RegionLayoutUnitTests). A named one of
    /// another maas_id; an unnamed (or foreign-named) one of the MAAS role from an address that is
    /// neither this host's nor one a named region already uses.
    static package func classify(_ rows: [(app: String, address: String, sessions: Int, maasRole: Bool)], ownID: String?,
                                 localAddresses: Set<String>) -> [Connection] {
        let own = ownID ?? "NO_ID"
        var named: [Connection] = [], byAddress: [String: Connection] = [:]
        var ownAddresses = localAddresses
        for row in rows {
            // maas-temporal-worker is a unit's name, not maas-temporal-<maas_id>.
            let id: String? = row.app.hasPrefix("maas-regiond-") ? String(row.app.dropFirst(13))
                : row.app.hasPrefix("maas-temporal-") && !row.app.hasPrefix("maas-temporal-worker") ? String(row.app.dropFirst(14)) : nil
            if let id, id == own { if !row.address.isEmpty { ownAddresses.insert(row.address) }; continue }
            let addr = row.address.isEmpty ? nil : row.address
            if let id {
                named.append(Connection(applicationName: row.app, maasId: id, clientAddress: addr, sessions: row.sessions))
            } else if row.maasRole, let addr {
                var c = byAddress[addr] ?? Connection(applicationName: row.app, maasId: "", clientAddress: addr, sessions: 0)
                c.sessions += row.sessions
                if c.applicationName.isEmpty { c.applicationName = row.app }
                byAddress[addr] = c
            }
        }
        let namedAddresses = Set(named.compactMap(\.clientAddress))
        let unnamed = byAddress.values.filter { !ownAddresses.contains($0.clientAddress ?? "") && !namedAddresses.contains($0.clientAddress ?? "") }
        return named + unnamed.sorted { ($0.clientAddress ?? "") < ($1.clientAddress ?? "") }
    }

    /// This host's addresses as PostgreSQL's host() prints them (loopback included).
    static package func localAddresses() -> Set<String> {
        var out: Set<String> = ["127.0.0.1", "::1"]
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return out }
        defer { freeifaddrs(list) }
        var p: UnsafeMutablePointer<ifaddrs>? = first
        while let cur = p {
            if let sa = cur.pointee.ifa_addr {
                var buf = [CChar](repeating: 0, count: Int(NI_MAXHOST))
                let len = sa.pointee.sa_family == sa_family_t(AF_INET6) ? socklen_t(MemoryLayout<sockaddr_in6>.size) : socklen_t(MemoryLayout<sockaddr_in>.size)
                if (sa.pointee.sa_family == sa_family_t(AF_INET) || sa.pointee.sa_family == sa_family_t(AF_INET6)),
                   getnameinfo(sa, len, &buf, socklen_t(buf.count), nil, 0, NI_NUMERICHOST) == 0 {
                    let s = String(cString: buf)
                    out.insert(String(s.prefix { $0 != "%" }))
                }
            }
            p = cur.pointee.ifa_next
        }
        return out
    }

    /// The distinct maas_id values of `connections`, sorted.
    static package func ids(_ connections: [Connection]) -> [String] { Array(Set(connections.map(\.label))).sorted() }

    /// The line a backup prints when other regions share the database.
    static package func otherRegionsWarning(_ ids: [String]) -> String {
        "other region controllers use this database (maas_id \(ids.joined(separator: ", "))): the archive holds the whole database but the /etc/maas and /var/lib/maas of this host only; back those hosts up too"
    }
}
