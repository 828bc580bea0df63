import Foundation
import MSBKit
import LibPQ
#if canImport(Glibc)
import Glibc
#endif

/// A database's part of dump.sql is loaded over a connection that logs in as the database's owner,
/// never a superuser: over the local socket as the OS user of the owner's name (peer
/// authentication, `maas` on a MAAS region), else as nobody; with the owner's password when one is
/// known (regiond.conf's database_pass, or the configured one), through a passfile only that OS user
/// reads. The privileged connection only creates the copy (OWNER that role) and runs the roles part
/// through RolesGate.
extension DatabaseSwap {
    /// Predefined roles whose members may run programs or read and write the server's files.
    static package let serverFileRoles = ["pg_execute_server_program", "pg_read_server_files", "pg_write_server_files"]

    /// Live roles and their strong attributes, and the owners of `databases` that exist.
    static package func rolesGate(_ c: PQConnection, databases: [String]) throws -> RolesGate {
        var live: [String: Set<String>] = [:]
        do {
            for r in try c.exec("SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls FROM pg_roles").rows {
                guard let name = r[0] else { continue }
                var has = Set<String>()
                for (i, a) in ["SUPERUSER", "CREATEROLE", "CREATEDB", "REPLICATION", "BYPASSRLS"].enumerated() where r[i + 1] == "t" { has.insert(a) }
                live[name] = has
            }
            var owners = Set<String>()
            for db in databases {
                if let o = try c.exec("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", [db]).scalar { owners.insert(o) }
            }
            return RolesGate(live: live, liveOwners: owners)
        } catch let e as PQError {
            throw BackupError.failed("cannot read the cluster's roles: \(e.message)")
        }
    }

    static package func rolesGate(target: PostgresTarget, passfile: String?, databases: [String]) throws -> RolesGate {
        let c = try target.connect(database: maintenanceDatabase(avoiding: databases), passfile: passfile)
        defer { c.finish() }
        return try rolesGate(c, databases: databases)
    }

    /// Refuses `owner` as the role to load `db` as: missing, a superuser, or a member of one (or of a
    /// role that may run programs or touch the server's files).
    static package func checkOwner(_ c: PQConnection, owner: String, db: String) throws {
        let q = """
            SELECT r.rolsuper, (SELECT string_agg(s.rolname, ', ') FROM pg_roles s WHERE s.oid <> r.oid
                     AND (s.rolsuper OR s.rolname = ANY($2::text[])) AND pg_has_role(r.oid, s.oid, 'MEMBER'))
            FROM pg_roles r WHERE r.rolname = $1
            """
        let rows: [[String?]]
        do { rows = try c.exec(q, [owner, "{" + serverFileRoles.joined(separator: ",") + "}"]).rows } catch let e as PQError {
            throw BackupError.failed("cannot read the role \(owner): \(e.message)")
        }
        guard let r = rows.first else {
            throw BackupError.data("the owner of \(db) in dump.sql, the role \(owner), does not exist here and the roles part did not create it")
        }
        if r[0] == "t" {
            throw BackupError.data("\(db) belongs to the superuser \(owner): restore loads each database as its owner and never as a superuser",
                                   hint: "make a role that is not a superuser own \(db) and its objects (MAAS's is maas: ALTER DATABASE \(db) OWNER TO maas), then back up again")
        }
        if let via = r[1] ?? nil {
            throw BackupError.data("the owner of \(db), the role \(owner), is a member of \(via): restore never loads a database as a role that can become a superuser or reach the server's files",
                                   hint: "REVOKE \(via) FROM \(owner)")
        }
    }

    /// The OS user and password to log in as `owner`.
    static package func ownerAccount(_ owner: String, target: PostgresTarget) -> (os: String, password: String?) {
        let password = target.ownerPasswords[owner]
        if target.isLocalSocket, let pw = getpwnam(owner), pw.pointee.pw_uid != 0 { return (owner, password) }
        return ("nobody", password)
    }

    /// The login of a database part as `owner`: checked on the privileged connection, its passfile
    /// (when there is a password) in a folder of `parent` only its OS user reads.
    static package func ownerLogin(_ owner: String, db: String, target: PostgresTarget, passfile: String?, in parent: PrivateDir,
                                   databases: [String], osUser: String? = nil) throws -> PsqlLogin {
        let c = try target.connect(database: maintenanceDatabase(avoiding: databases), passfile: passfile)
        defer { c.finish() }
        try checkOwner(c, owner: owner, db: db)
        return try ownerTarget(owner, target: target, in: parent, databases: databases, osUser: osUser).login
    }

    /// `target` as `owner` (its OS user set), and its login for psql.
    static package func ownerTarget(_ owner: String, target: PostgresTarget, in parent: PrivateDir, databases: [String],
                                    osUser: String? = nil) throws -> (target: PostgresTarget, passfile: String?, login: PsqlLogin) {
        let account = ownerAccount(owner, target: target)
        let os = osUser ?? account.os
        guard let pw = getpwnam(os) else {
            throw BackupError.unavailable("there is no OS user \(os) to run psql as the role \(owner)", hint: "create the user nobody")
        }
        var t = target
        t.user = owner
        t.password = account.password
        t.osUser = (os, pw.pointee.pw_uid, pw.pointee.pw_gid)
        var pf: String?
        if t.password != nil {
            let dir = try psqlFolder(for: os, in: parent, name: "owner-\(UInt32.random(in: 0...UInt32.max))")
            pf = try t.writePassfile(in: dir.path, databases: databases)
        }
        return (t, pf, PsqlLogin(osUser: os, environment: t.environment(passfile: pf)))
    }

    /// Preflight: the live owner of each dumped database that exists must not be a superuser, and a
    /// login as it must work the way psql will log in; else restore refuses before anything changes.
    static package func preflightOwners(_ c: PQConnection, target: PostgresTarget, databases: [String]) throws {
        for db in databases {
            let owner: String?
            do { owner = try c.exec("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", [db]).scalar } catch let e as PQError {
                throw BackupError.unavailable("database preflight for the restore failed: \(e.message)")
            }
            guard let owner else { continue }
            do { try checkOwner(c, owner: owner, db: db) } catch let e as BackupError {
                throw BackupError.unavailable(e.message + "; nothing was changed", hint: e.hint)
            }
            let tmp = try PrivateDir.makeTemporary()
            defer { tmp.remove() }
            let (t, pf, login) = try ownerTarget(owner, target: target, in: tmp, databases: [db])
            do { try t.connect(database: db, passfile: pf).finish() } catch let e as BackupError {
                let how = login.osUser == owner ? "over the local socket as the OS user \(owner) (peer authentication)"
                    : "as \(owner)" + (t.password == nil ? " without a password" : " with its password") + " from the OS user \(login.osUser)"
                throw BackupError.unavailable("restore loads \(db) as its owner \(owner) and cannot log in \(how): \(e.message); nothing was changed",
                                              hint: "let \(owner) log in: create the OS user \(owner) for peer authentication, or give its password in regiond.conf (database_user, database_pass)")
            }
        }
    }
}
