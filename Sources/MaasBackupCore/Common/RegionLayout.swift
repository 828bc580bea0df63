import Foundation
import LibPQ
import Yams

/// What kind of MAAS region this host is, read from the files MAAS itself writes (README "Region
/// layouts"): regiond.conf (empty values count as unset: `maas config-vault migrate` empties
/// database_name, database_user and database_pass), Vault, this region's maas_id, a snap.
public enum RegionLayout {
    /// regiond.conf under the root as key -> value, without keys whose value is empty.
    public static func regiondConf(_ config: Config) throws -> [String: String] {
        let path = config.live("/etc/maas/regiond.conf")
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [:] }
        var out: [String: String] = [:]
        try SafeYAML.refuseAliases(text, source: path)
        do {
            if let node = try Yams.compose(yaml: text), case .mapping(let m) = node {
                for (k, v) in m {
                    if let ks = k.string, let vs = v.string, !vs.trimmingCharacters(in: .whitespaces).isEmpty { out[ks] = vs }
                }
            }
        } catch {
            throw BackupError.config("\(path) is not valid YAML", hint: "fix it, or set database.* in the config")
        }
        return out
    }

    /// regiond.conf's vault_url: MAAS keeps its secrets (BMC credentials, the database credentials
    /// after `maas config-vault migrate`, ...) in Vault. Only the URL; never the approle.
    public static func vaultURL(_ config: Config) -> String? {
        (try? regiondConf(config))?["vault_url"]
    }

    /// Why the database cannot be reached without more config: a remote database whose credentials
    /// MAAS moved into Vault (regiond.conf keeps no database_user), and no database.user or
    /// password_file in the config. nil otherwise.
    public static func vaultCredentialsMissing(_ config: Config) -> String? {
        guard let r = try? regiondConf(config), let vault = r["vault_url"] else { return nil }
        let host = r["database_host"] ?? ""
        let local = host.isEmpty || ["localhost", "127.0.0.1", "::1"].contains(host) || host.hasPrefix("/")
        let d = config.database
        guard !local, d.host == nil, d.user == nil, d.passwordFile == nil, r["database_user"] == nil else { return nil }
        return "regiond.conf has no database credentials for the remote database \(host): MAAS keeps them in Vault (\(vault)), which this tool does not read"
    }

    static package let vaultCredentialsHint = "set database.user, database.name and database.password_file in the config"

    /// The one line backup and restore print when the region uses Vault.
    public static func vaultWarning(_ url: String) -> String {
        "this region keeps its secrets (BMC credentials and others) in Vault at \(url), not in this archive: back Vault up with Vault's own tools (e.g. `vault operator raft snapshot save`)"
    }

    /// This host's region id (/var/lib/maas/maas_id), nil when it has none yet.
    public static func maasID(_ config: Config) -> String? {
        guard let s = try? String(contentsOfFile: config.live("/var/lib/maas/maas_id"), encoding: .utf8) else { return nil }
        let t = s.trimmingCharacters(in: .whitespacesAndNewlines)
        return t.isEmpty ? nil : t
    }

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

    /// The MAAS database when neither the config nor regiond.conf names it: the one database holding
    /// maasserver_* tables, looked for as `target` (the postgres superuser over the local socket).
    static package func findMaasDatabase(_ target: PostgresTarget, passfile: String?) throws -> String {
        let c = try target.connect(database: "postgres", passfile: passfile)
        defer { c.finish() }
        var found: [String] = []
        do {
            let dbs = try c.exec("SELECT datname FROM pg_database WHERE datallowconn AND datname NOT IN ('template0', 'template1') ORDER BY datname")
                .rows.compactMap { $0.first ?? nil }
            for db in dbs {
                let d = db == "postgres" ? c : try target.connect(database: db, passfile: passfile)
                defer { if db != "postgres" { d.finish() } }
                let n = try d.exec("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'maasserver\\_%'").scalar
                if let n, n != "0" { found.append(db) }
            }
        } catch let e as PQError {
            throw BackupError.unavailable("cannot look for the MAAS database as \(target.display): \(e.message)",
                                          hint: "set database.name in the config")
        }
        guard found.count == 1 else {
            let what = found.isEmpty ? "no database holds maasserver_* tables"
                : "several databases hold maasserver_* tables: \(found.joined(separator: ", "))"
            throw BackupError.config("regiond.conf names no MAAS database (database_name is empty, as after `maas config-vault migrate`) and \(what)",
                                     hint: "set database.name in the config")
        }
        return found[0]
    }
}
