import Foundation
import MSBKit
import CLinux
import LibPQ
#if canImport(Glibc)
import Glibc
#endif

/// The names one restore uses for a dumped database.
public struct DatabaseNames: Sendable, Codable, Equatable {
    /// The live name (maasdb).
    public var name: String
    /// The new database the dump is loaded into: `<name>_restoring_<time>`.
    public var restoring: String
    /// Where the live database goes at the swap, kept (never dropped by the tool): `<name>_pre_restore_<time>`.
    public var previous: String
    /// Where the restored one goes if the restore is undone after the swap (then dropped): `<name>_failed_restore_<time>`.
    public var failed: String
    /// Whether a database of that name existed when the restore began.
    public var existed: Bool

    /// Every name of this database a restore connects to (a password target's passfile names each).
    package var all: [String] { [name, restoring, previous, failed] }

    static package func make(_ name: String, stamp: String, existed: Bool) -> DatabaseNames {
        DatabaseNames(name: name, restoring: "\(name)_restoring_\(stamp)", previous: "\(name)_pre_restore_\(stamp)",
                      failed: "\(name)_failed_restore_\(stamp)", existed: existed)
    }
}

/// What preflight learnt about restoring the databases (part of the plan).
public struct DatabaseRestorePlan: Sendable, Codable {
    /// The role restore connects as (database.restore_user, else database.user).
    public var role: String
    public var superuser: Bool
    public var databases: [DatabaseNames]
    /// "ok: ..." or why it could not be checked.
    public var freeSpace: String
    /// The OS user psql runs as (never root).
    public var psqlRunsAs: String
}

extension PostgresTarget {
    /// The target of a restore: the backup's, with database.restore_user and
    /// database.restore_password_file when they are set.
    static package func resolveForRestore(_ config: Config, fallbackDatabase: String? = nil) throws -> PostgresTarget {
        var t = try resolve(config, fallbackDatabase: fallbackDatabase)
        guard let ru = config.database.restoreUser else { return t }
        t.user = ru
        t.password = nil
        if let pf = config.database.restorePasswordFile {
            t.password = try readPasswordFile(pf, key: "database.restore_password_file")
            t.ownerPasswords[ru] = t.password
        }
        let localSocket = t.host == nil || t.host!.hasPrefix("/")
        t.osUser = nil
        if t.password == nil && localSocket {
            let osName = ru == "postgres" ? "postgres" : (config.database.osUser ?? "root")
            guard let pw = getpwnam(osName) else {
                throw BackupError.config("database.os_user '\(osName)' is not a user on this system", hint: "set database.os_user to the OS user that may connect (peer authentication)")
            }
            t.osUser = (osName, pw.pointee.pw_uid, pw.pointee.pw_gid)
        }
        return t
    }

    package var isLocalSocket: Bool { host == nil || host!.hasPrefix("/") }
}

/// Creating, checking, swapping and dropping the databases of a restore, all through libpq as the
/// restore role. The live database is only ever renamed (aside at the swap, back at an undo).
package enum DatabaseSwap {
    // MARK: - Preflight

    /// psql with `\restrict` (15.14+, 16.10+, 17.6+, 14.19+, 13.22+, any 18+).
    static package func supportsRestrict(_ version: String) -> Bool {
        let nums = version.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
        guard let major = nums.first else { return false }
        let minor = nums.count > 1 ? nums[1] : 0
        switch major {
        case 18...: return true
        case 17: return minor >= 6
        case 16: return minor >= 10
        case 15: return minor >= 14
        case 14: return minor >= 19
        case 13: return minor >= 22
        default: return false
        }
    }

    static package func checkPsql(_ psql: String) async throws {
        let r = try await Command.run(psql, ["--version"], environment: ["LC_ALL": "C"])
        // psql (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)
        let version = r.stdout.components(separatedBy: ")").dropFirst().first?.trimmingCharacters(in: .whitespaces)
            .split(separator: " ").first.map(String.init) ?? ""
        guard r.succeeded, supportsRestrict(version) else {
            let major = version.split(separator: ".").first.map(String.init) ?? "<major>"
            throw BackupError.unavailable("\(psql) (\(version.isEmpty ? "version unknown" : version)) cannot restrict meta-commands (\\restrict), which restore needs to load an untrusted dump.sql safely",
                                          hint: "upgrade postgresql-client-\(major) to 13.22, 14.19, 15.14, 16.10, 17.6 or newer")
        }
    }

    /// The OS user psql runs as: the peer-authentication user for a local socket (postgres when
    /// that would be root), else nobody. Never root.
    static package func psqlOSUser(_ target: PostgresTarget) -> String {
        if target.isLocalSocket {
            if let os = target.osUser, os.uid != 0 { return os.name }
            return "postgres"
        }
        return "nobody"
    }

    /// The database to stand on while `avoiding` are created, renamed or dropped.
    static package func maintenanceDatabase(avoiding: [String]) -> String {
        avoiding.contains("postgres") ? "template1" : "postgres"
    }

    /// Privileges, names and space, before anything changes.
    /// `archive`: where to read dump.sql's roles part, checked through RolesGate (65 when refused).
    static package func preflight(target: PostgresTarget, manifest: Manifest, psql: String, stamp: String, passfile: String?,
                                  archive: String? = nil) async throws -> DatabaseRestorePlan {
        try await checkPsql(psql)
        let psqlUser = psqlOSUser(target)
        guard getpwnam(psqlUser) != nil else {
            throw BackupError.unavailable("there is no OS user \(psqlUser) to run psql as (restore never runs it as root)",
                                          hint: target.isLocalSocket ? "install PostgreSQL, or set database.os_user" : "create the user nobody")
        }
        let dbs = manifest.database.databases
        let c = try target.connect(database: maintenanceDatabase(avoiding: dbs), passfile: passfile)
        defer { c.finish() }
        let restoreKeys = "database.restore_user and database.restore_password_file"
        do {
            let row = try c.exec("SELECT rolsuper, rolcreatedb FROM pg_roles WHERE rolname = current_user").rows.first ?? []
            let superuser = row.first == "t", createdb = row.count > 1 && row[1] == "t"
            guard superuser || createdb else {
                throw BackupError.unavailable("the database role \(target.user) lacks CREATEDB, which restore needs to load the backup into a new database before it replaces the current one; nothing was changed",
                                              hint: "set \(restoreKeys) to a role with CREATEDB that owns \(manifest.database.maasDatabase) (or a superuser), or ALTER ROLE \(target.user) CREATEDB")
            }
            var names: [DatabaseNames] = []
            var liveBytes: Int64 = 0
            for db in dbs {
                let n = DatabaseNames.make(db, stamp: stamp, existed: false)
                for x in [n.restoring, n.previous, n.failed] where x.utf8.count > 63 {
                    throw BackupError.unavailable("the database name \(x) that restore would use is longer than PostgreSQL's 63 bytes; nothing was changed",
                                                  hint: "rename the database \(db) to a shorter name")
                }
                let r = try c.exec("SELECT pg_has_role(current_user, datdba, 'USAGE'), pg_get_userbyid(datdba), pg_database_size(oid) FROM pg_database WHERE datname = $1", [db]).rows
                var names1 = n
                if let r = r.first {
                    names1.existed = true
                    guard superuser || r[0] == "t" else {
                        throw BackupError.unavailable("the database role \(target.user) does not own \(db) (its owner is \(r[1] ?? "?")), and restore must rename it to keep it; nothing was changed",
                                                      hint: "set \(restoreKeys) to the owner of \(db) or a superuser")
                    }
                    liveBytes += Int64(r[2] ?? "0") ?? 0
                }
                for x in [n.restoring, n.previous, n.failed] {
                    if try c.exec("SELECT 1 FROM pg_database WHERE datname = $1", [x]).rows.count > 0 {
                        throw BackupError.unavailable("a database named \(x) exists already; nothing was changed", hint: "drop or rename it, then run restore again")
                    }
                }
                names.append(names1)
            }
            try preflightOwners(c, target: target, databases: dbs)
            if let archive {
                let restoring = Dictionary(uniqueKeysWithValues: names.map { ($0.name, $0.restoring) })
                try DumpLoader.checkRolesPart(archive: archive, names: restoring, gate: try rolesGate(c, databases: dbs))
            }
            let need = max(liveBytes, manifest.dump.size)
            var space = "not checked (\(target.isLocalSocket ? "the restore role is not a superuser" : "the server is not on this host")): the restored copy needs about \(mib(need)) next to the current database until it is dropped"
            if target.isLocalSocket && superuser, let dir = try c.exec("SHOW data_directory").scalar {
                var fs = statvfs()
                if statvfs(dir, &fs) == 0 {
                    let free = Int64(fs.f_bavail) * Int64(fs.f_frsize)
                    let want = need + need / 10 + (64 << 20)
                    guard free >= want else {
                        throw BackupError.unavailable("not enough free space in \(dir) for the restored copy of the database: about \(mib(want)) needed, \(mib(free)) free; nothing was changed",
                                                      hint: "free space there (restore keeps the current database until you drop it)")
                    }
                    space = "ok: \(mib(free)) free in \(dir) for about \(mib(need))"
                }
            }
            return DatabaseRestorePlan(role: target.user, superuser: superuser, databases: names, freeSpace: space, psqlRunsAs: psqlUser)
        } catch let e as PQError {
            throw BackupError.unavailable("database preflight for the restore failed: \(e.message)")
        }
    }

    static package func mib(_ n: Int64) -> String { n >= 10 << 30 ? "\(n >> 30) GiB" : "\((n + (1 << 20) - 1) >> 20) MiB" }

    // MARK: - Changes

    static package func q(_ c: PQConnection, _ name: String) throws -> String { try c.escapeIdentifier(name) }

    static package func exists(_ c: PQConnection, _ name: String) throws -> Bool {
        try c.exec("SELECT 1 FROM pg_database WHERE datname = $1", [name]).rows.count > 0
    }

    /// Ends the other sessions on `db`, one by one: a session of a role we may not signal stays (and
    /// the rename that follows says the database is in use).
    static package func endSessions(_ c: PQConnection, on db: String, log: ((String) -> Void)?) {
        let wait = c.serverVersion() >= 140000 ? ", 5000" : ""
        guard let pids = try? c.exec("SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", [db]).rows else { return }
        var ended = 0
        for row in pids {
            guard let pid = row.first ?? nil else { continue }
            if (try? c.exec("SELECT pg_terminate_backend($1::int\(wait))", [pid]).scalar) == "t" { ended += 1 }
        }
        if ended > 0 { log?("ended \(ended) session(s) on \(db)") }
    }

    /// Connections the server can still take (max_connections less the reserved ones and the client
    /// sessions open now); nil when it cannot be read.
    static package func freeConnections(target: PostgresTarget, passfile: String?, avoiding: [String]) -> Int? {
        guard let c = try? target.connect(database: maintenanceDatabase(avoiding: avoiding), passfile: passfile) else { return nil }
        defer { c.finish() }
        let sql = """
            SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int
                   - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int
            """
        return (try? c.exec(sql).scalar).flatMap { $0.flatMap { Int($0) } }
    }

    static package func create(_ spec: CreateDatabaseSpec, as copy: String, target: PostgresTarget, passfile: String?, avoiding: [String]) throws {
        let c = try target.connect(database: maintenanceDatabase(avoiding: avoiding), passfile: passfile)
        defer { c.finish() }
        do { try c.exec(spec.statement(newName: copy)) } catch let e as PQError {
            throw BackupError.failed("cannot create the database \(copy) to load \(spec.name) into: \(e.message)")
        }
    }

    /// Drops each of `names` that exists (the copies a restore made); the problems.
    static package func drop(_ names: [String], target: PostgresTarget, passfile: String?, avoiding: [String], log: ((String) -> Void)?) -> [String] {
        var problems: [String] = []
        let c: PQConnection
        do { c = try target.connect(database: maintenanceDatabase(avoiding: avoiding), passfile: passfile) } catch {
            return names.map { "cannot drop \($0): \(error)" }
        }
        defer { c.finish() }
        for n in names {
            do {
                guard try exists(c, n) else { continue }
                if c.serverVersion() >= 130000 {
                    try c.exec("DROP DATABASE \(try q(c, n)) WITH (FORCE)")
                } else {
                    endSessions(c, on: n, log: nil)
                    try c.exec("DROP DATABASE \(try q(c, n))")
                }
                log?("dropped the database \(n)")
            } catch let e as PQError {
                problems.append("cannot drop the database \(n): \(e.message)")
            } catch {
                problems.append("cannot drop the database \(n): \(error)")
            }
        }
        return problems
    }

    /// Renames in one transaction (all or none), after ending the sessions on `busy`; retried a few
    /// times when a session comes back in between (55006).
    static package func renameAll(_ renames: (PQConnection) throws -> [(String, String)], busy: (PQConnection) throws -> [String],
                          target: PostgresTarget, passfile: String?, avoiding: [String], log: ((String) -> Void)?) throws -> [(String, String)] {
        let c = try target.connect(database: maintenanceDatabase(avoiding: avoiding), passfile: passfile)
        defer { c.finish() }
        var attempt = 0
        while true {
            attempt += 1
            do {
                for db in try busy(c) { endSessions(c, on: db, log: log) }
                let list = try renames(c)
                try c.exec("BEGIN")
                for (from, to) in list { try c.exec("ALTER DATABASE \(try q(c, from)) RENAME TO \(try q(c, to))") }
                try c.exec("COMMIT")
                return list
            } catch let e as PQError {
                _ = try? c.exec("ROLLBACK")
                if e.sqlState == "55006" && attempt < 5 { usleep(500_000); continue }
                throw BackupError.failed("cannot rename the databases: \(e.message)",
                                         hint: e.sqlState == "55006" ? "something keeps connecting to the database; stop it and run again" : nil)
            }
        }
    }

    /// The swap: each live database to `previous`, its loaded copy to the live name, in one transaction.
    static package func swapIn(_ names: [DatabaseNames], target: PostgresTarget, passfile: String?, log: ((String) -> Void)?) throws -> [DatabaseNames] {
        var out = names
        let all = names.map(\.name)
        let done = try renameAll({ c in
            var list: [(String, String)] = []
            for i in out.indices {
                out[i].existed = try exists(c, out[i].name)
                if out[i].existed { list.append((out[i].name, out[i].previous)) }
                list.append((out[i].restoring, out[i].name))
            }
            return list
        }, busy: { c in try all.filter { try exists(c, $0) } }, target: target, passfile: passfile, avoiding: all, log: log)
        for (from, to) in done { log?("renamed the database \(from) to \(to)") }
        return out
    }

    /// Puts the previous databases back under their names; the restored ones go to `failed` and are
    /// dropped. Does what is left after a partial run (recover).
    static package func swapBack(_ names: [DatabaseNames], target: PostgresTarget, passfile: String?, log: ((String) -> Void)?) throws -> [String] {
        let all = names.map(\.name) + names.map(\.previous)
        _ = try renameAll({ c in
            var list: [(String, String)] = []
            for n in names {
                let prev = try exists(c, n.previous)
                // Only a name that holds the restored copy moves: with the previous one still aside, or
                // when there was no previous one.
                if (prev || !n.existed), try exists(c, n.name), try !exists(c, n.restoring) { list.append((n.name, n.failed)) }
                if prev { list.append((n.previous, n.name)) }
            }
            return list
        }, busy: { c in try names.map(\.name).filter { try exists(c, $0) } }, target: target, passfile: passfile, avoiding: all, log: log)
        return drop(names.map(\.failed) + names.map(\.restoring), target: target, passfile: passfile, avoiding: all, log: log)
    }

    /// Whether the swap happened (the copies are gone under their restoring names).
    static package func swapped(_ names: [DatabaseNames], target: PostgresTarget, passfile: String?) throws -> Bool {
        let c = try target.connect(database: maintenanceDatabase(avoiding: names.map(\.name)), passfile: passfile)
        defer { c.finish() }
        do {
            for n in names where try exists(c, n.restoring) { return false }
            return true
        } catch let e as PQError {
            throw BackupError.failed("cannot read the database names: \(e.message)")
        }
    }

    /// The command that drops a kept previous database, for the report.
    static package func dropCommand(_ db: String, target: PostgresTarget) -> String {
        var parts: [String] = []
        if target.isLocalSocket, let os = target.osUser, os.name != "root" { parts += ["sudo", "-u", os.name] }
        parts.append("dropdb")
        if let h = target.host { parts += ["-h", h] }
        if let p = target.port { parts += ["-p", String(p)] }
        parts += ["-U", target.user, "--", db]
        return parts.map { $0.allSatisfy({ $0.isLetter || $0.isNumber || "_-./=:@".contains($0) }) ? $0 : "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }
            .joined(separator: " ")
    }
}

extension DatabaseSwap {
    /// A private folder owned by psql's OS user (0700): its passfile lives there.
    static package func psqlFolder(for user: String, in parent: PrivateDir, name: String = "psql") throws -> PrivateDir {
        // Inside the run's private folder (recorded in the journal), so that `recover` removes it
        // with the rest after a SIGKILL: the parent becomes 0711 (the psql user may pass through,
        // not list it; everything else in it is root's 0600), this folder is the psql user's 0700.
        let dir = PrivateDir(path: parent.path + "/" + name)
        guard chmod(parent.path, 0o711) == 0, mkdir(dir.path, 0o700) == 0 else {
            throw BackupError.failed("cannot create \(dir.path): \(Errno.last.description)")
        }
        guard let pw = getpwnam(user), chown(dir.path, pw.pointee.pw_uid, pw.pointee.pw_gid) == 0 else {
            dir.remove()
            throw BackupError.failed("cannot hand \(dir.path) to \(user): \(Errno.last.description)")
        }
        return dir
    }

    /// A 0600 passfile that only `user` reads, when the target has a password, naming `names`' databases.
    static package func passfile(_ target: PostgresTarget, in dir: PrivateDir, for user: String, names: [DatabaseNames]) throws -> String? {
        guard target.password != nil, let pw = getpwnam(user) else { return nil }
        var t = target
        t.osUser = (user, pw.pointee.pw_uid, pw.pointee.pw_gid)
        return try t.writePassfile(in: dir.path, databases: names.flatMap(\.all))
    }
}
