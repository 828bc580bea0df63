import Foundation
import MSBKit
import LibPQ
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// What preflight learnt about the database.
public struct DatabasePlan: Sendable, Codable {
    public var serverVersion: String
    public var serverVersionNum: Int
    public var databases: [String]
    public var sizeBytes: Int64
    public var pgDump: String
    public var pgDumpall: String
    /// Whether we connect as a superuser; otherwise the roles are dumped without their passwords.
    public var superuser: Bool
}

/// A PostgreSQL snapshot exported by a connection whose transaction stays open.
public final class PinnedSnapshot: @unchecked Sendable {
    public let database: String
    public private(set) var snapshotID: String = ""
    package let connection: PQConnection

    package init(database: String, connection: PQConnection) {
        self.database = database
        self.connection = connection
    }

    /// Inside the window: opens the transaction and exports its snapshot.
    package func pin() throws {
        do {
            try connection.exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            guard let id = try connection.exec("SELECT pg_export_snapshot()").scalar else {
                throw BackupError.failed("pg_export_snapshot() returned nothing in \(database)")
            }
            snapshotID = id
        } catch let e as PQError {
            throw BackupError.failed("cannot pin a snapshot of \(database): \(e.message)")
        }
    }

    /// Ends the transaction and closes the connection.
    public func release() {
        if connection.isOpen { _ = try? connection.exec("ROLLBACK") }
        connection.finish()
    }
}

/// The database side of a backup: preflight, snapshot pinning, the dump, counts and schema head.
public struct PostgresAdapter: Sendable {
    public let target: PostgresTarget

    public init(target: PostgresTarget) { self.target = target }

    /// Preflight: reachable, server version, databases to dump, pg_dump of the server's major version.
    /// `maasDatabaseMayBeMissing` (restore on a fresh machine): a server without the MAAS database
    /// is answered on the maintenance database instead, and the missing database counts as empty.
    public func preflight(passfile: String?, maasDatabaseMayBeMissing: Bool = false) throws -> DatabasePlan {
        let c: PQConnection
        var missing = false
        do {
            c = try target.connect(database: target.maasDatabase, passfile: passfile)
        } catch where maasDatabaseMayBeMissing {
            guard let m = try? target.connect(database: PostgresAdapter.maintenance(avoiding: target.maasDatabase), passfile: passfile),
                  (try? m.exec("SELECT 1 FROM pg_database WHERE datname = $1", [target.maasDatabase]).rows.isEmpty) == true else { throw error }
            c = m
            missing = true
        }
        defer { c.finish() }
        do {
            let num = c.serverVersion()
            let version = try c.exec("SHOW server_version").scalar ?? "\(num)"
            var dbs: [String]
            switch target.scope {
            case .maas: dbs = [target.maasDatabase]
            case .all:
                dbs = try c.exec("SELECT datname FROM pg_database WHERE datallowconn AND datname NOT IN ('template0','template1') ORDER BY datname = 'postgres' DESC, datname")
                    .rows.compactMap { $0.first ?? nil }
            }
            var size: Int64 = 0
            for db in dbs where !(missing && db == target.maasDatabase) {
                size += Int64(try c.exec("SELECT pg_database_size($1)", [db]).scalar ?? "0") ?? 0
            }
            let major = num / 10000
            let dir = target.binDir ?? "/usr/lib/postgresql/\(major)/bin"
            let dump = dir + "/pg_dump", dumpall = dir + "/pg_dumpall"
            for tool in [dump, dumpall] where !FileManager.default.isExecutableFile(atPath: tool) {
                throw BackupError.unavailable("\(tool) is missing: pg_dump of the server's major version \(major) is needed (the server is \(target.host ?? "local") at PostgreSQL \(version))",
                                              hint: PostgresAdapter.clientPackageHint(major: major))
            }
            let superuser = try c.exec("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").scalar == "t"
            return DatabasePlan(serverVersion: version, serverVersionNum: num, databases: dbs, sizeBytes: size,
                                pgDump: dump, pgDumpall: dumpall, superuser: superuser)
        } catch let e as PQError {
            throw BackupError.unavailable("database preflight failed: \(e.message)")
        }
    }

    /// The database to ask when `name` may not exist.
    static package func maintenance(avoiding name: String) -> String { name == "postgres" ? "template1" : "postgres" }

    /// True when the server answers and has no database `name` (a fresh machine before restore);
    /// false when it exists or the server cannot be asked.
    public func databaseIsMissing(_ name: String, passfile: String?) -> Bool {
        guard let c = try? target.connect(database: PostgresAdapter.maintenance(avoiding: name), passfile: passfile) else { return false }
        defer { c.finish() }
        return (try? c.exec("SELECT 1 FROM pg_database WHERE datname = $1", [name]).rows.isEmpty) == true
    }

    /// Before the window: one open connection per database (connecting is not done in the window).
    public func openConnections(_ plan: DatabasePlan, passfile: String?) throws -> [PinnedSnapshot] {
        var out: [PinnedSnapshot] = []
        do {
            for db in plan.databases {
                out.append(PinnedSnapshot(database: db, connection: try target.connect(database: db, passfile: passfile)))
            }
        } catch {
            out.forEach { $0.release() }
            throw error
        }
        return out
    }

    /// Inside the window: pin a snapshot in every database.
    public func pinAll(_ pins: [PinnedSnapshot]) throws {
        for p in pins { try p.pin() }
    }

    /// The MAAS schema head, read inside the pinned snapshot.
    public func schemaHead(_ pin: PinnedSnapshot) throws -> SchemaHead {
        do {
            var head = SchemaHead()
            if try pin.connection.exec("SELECT to_regclass('public.django_migrations') IS NOT NULL").scalar == "t" {
                head.django = try pin.connection.exec(
                    "SELECT name FROM django_migrations WHERE app = 'maasserver' ORDER BY id DESC LIMIT 1").scalar
            }
            if try pin.connection.exec("SELECT to_regclass('public.alembic_version') IS NOT NULL").scalar == "t" {
                head.alembic = try pin.connection.exec("SELECT string_agg(version_num, ',' ORDER BY version_num) FROM alembic_version").scalar
            }
            return head
        } catch let e as PQError {
            throw BackupError.failed("cannot read the schema head of \(pin.database): \(e.message)")
        }
    }

    /// Per-table row counts inside the pinned snapshot (the same instant as the dump).
    public func rowCounts(_ pin: PinnedSnapshot) throws -> [String: Int64] {
        do {
            return try PostgresAdapter.rowCounts(pin.connection)
        } catch let e as PQError {
            throw BackupError.failed("cannot count rows in \(pin.database): \(e.message)")
        }
    }

    /// Row counts of every user table on `connection`, keyed "schema.table".
    public static func rowCounts(_ c: PQConnection) throws -> [String: Int64] {
        let tables = try c.exec("""
            SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r','p') AND n.nspname NOT IN ('pg_catalog','information_schema')
              AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' ORDER BY 1, 2
            """).rows
        var out: [String: Int64] = [:]
        for row in tables {
            guard let s = row[0], let t = row[1] else { continue }
            let q = "SELECT count(*) FROM \(try c.escapeIdentifier(s)).\(try c.escapeIdentifier(t))"
            out["\(s).\(t)"] = Int64(try c.exec(q).scalar ?? "0") ?? 0
        }
        return out
    }

    /// Writes dump.sql to `fd` in the order `pg_dumpall -c` uses: drop the databases, drop and
    /// recreate the roles, then each database from `pg_dump --create --snapshot=<id>`.
    public func dump(_ plan: DatabasePlan, pins: [PinnedSnapshot], to fd: FileDescriptor, passfile: String?) async throws {
        let env = target.environment(passfile: passfile)
        let user = target.osUser?.name
        var header = """
            --
            -- PostgreSQL database cluster dump, written by maas-snapshot-backup
            -- in the order of pg_dumpall --clean. Restore with: psql -f dump.sql postgres
            --

            SET default_transaction_read_only = off;
            SET client_encoding = 'UTF8';
            SET standard_conforming_strings = on;

            \\connect template1

            --
            -- Drop databases (except postgres and template1)
            --


            """
        for db in plan.databases where db != "postgres" {
            header += "DROP DATABASE IF EXISTS \(PostgresAdapter.quoteIdent(db));\n"
        }
        header += "\n\n"
        try writeAll(fd, header)

        // Roles and tablespaces: pg_dumpall --globals-only --clean.
        var globals = ["--globals-only", "--clean", "--if-exists", "--no-password",
                       "--database=" + PostgresTarget.conninfoDatabase(target.maasDatabase)]
        if !plan.superuser { globals.append("--no-role-passwords") }  // pg_authid needs a superuser
        let g = try await Command.run(plan.pgDumpall, globals,
                                      environment: env, asUser: user, stdoutTo: fd)
        guard g.succeeded else { throw BackupError.failed("pg_dumpall --globals-only failed: \(g.lastErrorLine)") }

        for pin in pins {
            try writeAll(fd, "\n--\n-- Database \"\(pin.database)\" dump\n--\n\n")
            var args = ["--create", "--no-password", "--snapshot=\(pin.snapshotID)",
                        "--dbname=" + PostgresTarget.conninfoDatabase(pin.database)]
            if pin.database == "postgres" { args.insert("--clean", at: 0) }
            let r = try await Command.run(plan.pgDump, args, environment: env, asUser: user, stdoutTo: fd)
            guard r.succeeded else { throw BackupError.failed("pg_dump of \(pin.database) failed: \(r.lastErrorLine)") }
        }
        try writeAll(fd, "\n--\n-- PostgreSQL database cluster dump complete\n--\n\n")
    }

    /// How to get the client programs of a server's major version: the Debian package, which for a
    /// major the Debian release does not ship (a remote server, or another major than the local one)
    /// comes from the PostgreSQL project's apt repository.
    public static func clientPackageHint(major: Int) -> String {
        "apt-get install postgresql-client-\(major) (from apt.postgresql.org when this Debian release does not ship PostgreSQL \(major)), or set database.bin_dir to the folder holding its pg_dump"
    }

    private func writeAll(_ fd: FileDescriptor, _ s: String) throws {
        _ = try fd.writeAll(Array(s.utf8))
    }

    static package func quoteIdent(_ s: String) -> String { "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }
}

