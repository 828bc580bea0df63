import Foundation
import MaasBackupCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

extension TestEnv {
    /// `SELECT rolsuper` of `role`, or "" when it does not exist.
    func superuser(_ role: String) throws -> String {
        try psql("SELECT rolsuper FROM pg_roles WHERE rolname = '\(role)'", db: "postgres")
    }

    /// The role's password hash and connection limit, as pg_authid holds them.
    func authid(_ role: String) throws -> String {
        try psql("SELECT rolpassword || ' ' || rolconnlimit || ' ' || rolcanlogin FROM pg_authid WHERE rolname = '\(role)'", db: "postgres")
    }
}

/// Issue 23: nothing in dump.sql runs with more than the MAAS database owner's rights. Each
/// database's part loads as its owner (maas, no superuser); the roles part goes through RolesGate,
/// which only lets MAAS's role be created or changed, never made stronger, and never touches other
/// roles. The same rules in restore and verify --deep.
@Suite("sql trust", .serialized, .enabled(if: TestEnv.skipReason == nil, "\(TestEnv.skipReason ?? "")"), .sharedEnv("sqltrust"))
struct SQLTrustTests {
    var shared: SharedEnv { get throws { try SharedEnv.get() } }

    func events(_ env: TestEnv) throws -> String { try env.psql("SELECT count(*) FROM maasserver_event") }

    /// A failed restore changed nothing: rows, no copies, services running.
    func nothingChanged(_ env: TestEnv, events before: String) throws {
        #expect(try events(env) == before, "the live database changed")
        let copies = try env.restoreCopies()
        #expect(copies.isEmpty, "\(copies)")
        #expect(try env.isActive("maas-regiond") && env.isActive("maas-rackd"))
    }

    @Test("a database part with ALTER ROLE maas WITH SUPERUSER or COPY TO PROGRAM: it runs as maas, is refused by the server, the restore is undone and maas stays as it was")
    func databasePartRunsAsTheOwner() throws {
        let shared = try shared
        let env = shared.env
        let archive = try shared.baselineArchive()
        let mark = "/tmp/msb-sqltrust-\(getpid())"
        try? FileManager.default.removeItem(atPath: mark)
        defer { _ = try? env.psql("ALTER ROLE maas NOSUPERUSER", db: "postgres"); try? FileManager.default.removeItem(atPath: mark) }
        for (name, statement) in [("su", "ALTER ROLE maas WITH SUPERUSER;"), ("program", "COPY (SELECT 1) TO PROGRAM 'touch \(mark)';")] {
            let bad = try RT.rewrittenDump(archive, in: env.dir + "/dbpart-" + name) { dump in
                try RT.insert(statement, afterLineStarting: "\\connect maasdb", in: dump, last: true)
            }
            _ = try env.psql("DELETE FROM maasserver_event WHERE id % 9 = 0")
            let before = try events(env)
            let r = try RT.tool(env, ["restore", bad, "--yes"])
            #expect(r.status == 1, "\(name): \(r.stderr)")
            #expect(r.stderr.contains("42501"), "\(name): \(r.stderr)")
            #expect(try env.superuser("maas") == "f", "\(name): maas became a superuser")
            #expect(!FileManager.default.fileExists(atPath: mark), "\(name): COPY TO PROGRAM ran")
            try nothingChanged(env, events: before)

            let deep = try RT.tool(env, ["verify", bad, "--deep"])
            #expect(deep.status == 65 && deep.stderr.contains("42501"), "\(name): \(deep.stderr)")
            #expect(!FileManager.default.fileExists(atPath: mark), "\(name): COPY TO PROGRAM ran in verify --deep")
        }
        RT.removeAsideFolders(root: env.root)
    }

    @Test("the roles part may not make maas a superuser, create a superuser, or run COPY TO PROGRAM: restore and verify --deep refuse the archive (65) naming the line, nothing changed")
    func rolesPartEscalationsAreRefused() throws {
        let shared = try shared
        let env = shared.env
        let archive = try shared.baselineArchive()
        let mark = "/tmp/msb-sqltrust-roles-\(getpid())"
        try? FileManager.default.removeItem(atPath: mark)
        defer {
            _ = try? env.psql("ALTER ROLE maas NOSUPERUSER", db: "postgres")
            _ = try? env.psql("DROP ROLE IF EXISTS evil", db: "postgres")
            try? FileManager.default.removeItem(atPath: mark)
        }
        let cases = [("su", "ALTER ROLE maas WITH SUPERUSER;"), ("evil", "CREATE ROLE evil WITH SUPERUSER LOGIN PASSWORD 'x';"),
                     ("program", "COPY (SELECT 1) TO PROGRAM 'touch \(mark)';"), ("grant", "GRANT postgres TO maas;")]
        for (name, statement) in cases {
            let bad = try RT.rewrittenDump(archive, in: env.dir + "/roles-" + name) { dump in
                try RT.insert(statement, afterLineStarting: "CREATE ROLE maas", in: dump)
            }
            let before = try events(env)
            let r = try RT.tool(env, ["restore", bad, "--yes"])
            #expect(r.status == 65, "\(name): \(r.stderr)")
            #expect(r.stderr.contains("dump.sql line") && r.stderr.contains("roles part"), "\(name): \(r.stderr)")
            #expect(try env.superuser("maas") == "f", "\(name): maas became a superuser")
            #expect(try env.superuser("evil") == "", "\(name): the role evil was created")
            #expect(try env.psql("SELECT pg_has_role('maas', 'postgres', 'MEMBER')", db: "postgres") == "f", "\(name)")
            #expect(!FileManager.default.fileExists(atPath: mark), "\(name): COPY TO PROGRAM ran")
            try nothingChanged(env, events: before)

            let deep = try RT.tool(env, ["verify", bad, "--deep"])
            #expect(deep.status == 65 && deep.stderr.contains("roles part"), "\(name): \(deep.stderr)")
        }
        RT.removeAsideFolders(root: env.root)
    }

    @Test("another application's role keeps its live password and attributes; a role only the backup had is not made; MAAS's role gets the backup's password")
    func otherRolesAreNeverTouched() throws {
        let shared = try shared
        let env = shared.env
        _ = try shared.baselineArchive()
        _ = try env.psql("CREATE ROLE otherapp LOGIN PASSWORD 'app-at-backup' CONNECTION LIMIT 5", db: "postgres")
        _ = try env.psql("CREATE ROLE gone LOGIN", db: "postgres")
        _ = try env.psql("ALTER ROLE maas PASSWORD 'maas-at-backup'", db: "postgres")
        defer { for r in ["otherapp", "gone"] { _ = try? env.psql("DROP ROLE IF EXISTS \(r)", db: "postgres") } }
        let maasAtBackup = try env.authid("maas")
        let b = try env.tool(["--json", "--reason", "roles"])
        #expect(b.status == 0, "\(b.stderr)")
        let archive = try #require(RT.json(b)["archive"] as? String)
        defer { for x in ["", ".manifest.json", ".verified"] { try? FileManager.default.removeItem(atPath: archive + x) } }

        _ = try env.psql("ALTER ROLE otherapp PASSWORD 'app-now' CONNECTION LIMIT 3 NOLOGIN", db: "postgres")
        _ = try env.psql("DROP ROLE gone", db: "postgres")
        _ = try env.psql("ALTER ROLE maas PASSWORD 'maas-now'", db: "postgres")
        let appNow = try env.authid("otherapp")
        let r = try RT.tool(env, ["restore", archive, "--yes"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try env.authid("otherapp") == appNow, "the restore changed another application's role")
        #expect(try env.superuser("gone") == "", "the restore made a role MAAS does not use")
        #expect(try env.authid("maas") == maasAtBackup, "MAAS's role did not get the backup's password")
        #expect(r.stderr.contains("otherapp"), "the skipped roles are not named: \(r.stderr)")
        #expect(try env.psql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'maasdb'", db: "postgres") == "maas")
        #expect(try env.superuser("maas") == "f")
        try env.dropRestoreCopies()
        RT.removeAsideFolders(root: env.root)
    }

    @Test("a database that belongs to a superuser is refused in preflight (69), nothing stopped")
    func superuserOwnerRefused() throws {
        let shared = try shared
        let env = shared.env
        let archive = try shared.baselineArchive()
        _ = try env.psql("ALTER DATABASE maasdb OWNER TO postgres", db: "postgres")
        defer { _ = try? env.psql("ALTER DATABASE maasdb OWNER TO maas", db: "postgres") }
        let before = try events(env)
        let r = try RT.tool(env, ["restore", archive, "--yes"])
        #expect(r.status == 69, "\(r.stderr)")
        #expect(r.stderr.contains("superuser") && r.stderr.contains("OWNER TO maas"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").filter { $0.contains("error:") }.count == 1, "one line: \(r.stderr)")
        try nothingChanged(env, events: before)
    }
}

/// The real MAAS 3.5.0 schema (CREATE EXTENSION btree_gin, two more schemas) restores as its owner
/// maas and passes verify --deep.
enum Schema350 {
    static var path: String { TestEnv.repo.deletingLastPathComponent().path + "/shared/fixtures/maas-schema/maas-3.5.0.sql" }
    static var present: Bool { FileManager.default.fileExists(atPath: path) }
}

@Suite(.serialized, .enabled(if: TestEnv.skipReason == nil && Schema350.present,
                              "\(TestEnv.skipReason ?? "../shared/fixtures/maas-schema/maas-3.5.0.sql is absent")"))
final class SQLTrust35Tests {
    let env: TestEnv

    init() throws { env = try TestEnv(name: "schema35", rows: 300, schema: Schema350.path) }
    deinit { env.down() }

    @Test("a MAAS 3.5.0 backup restores as maas (row counts equal, btree_gin there) and passes verify --deep")
    func maas350Restores() throws {
        #expect(try env.psql("SELECT extname FROM pg_extension WHERE extname = 'btree_gin'") == "btree_gin")
        let b = try env.tool(["--json", "--reason", "3.5.0"])
        #expect(b.status == 0, "\(b.stderr)")
        let archive = try #require(RT.json(b)["archive"] as? String)
        let m = try RT.manifest(sidecarOf: archive)
        _ = try env.psql("DELETE FROM maasserver_event WHERE id % 3 = 0")
        let r = try env.tool(["restore", archive, "--yes", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try env.psql("SELECT count(*) FROM maasserver_event") == String(m.database.rowCounts["maasdb"]?["public.maasserver_event"] ?? -1))
        #expect(try env.psql("SELECT extname || ' ' || pg_get_userbyid(extowner) FROM pg_extension WHERE extname = 'btree_gin'") == "btree_gin maas")
        #expect(try env.psql("SELECT rolsuper FROM pg_roles WHERE rolname = 'maas'") == "f")
        let deep = try env.tool(["verify", archive, "--deep"])
        #expect(deep.status == 0, "\(deep.stderr)")
    }
}
