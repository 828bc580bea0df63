import Foundation
import MSBKit
import LibPQ

extension RegionLayout {
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
