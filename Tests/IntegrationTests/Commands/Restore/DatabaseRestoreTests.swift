import Foundation
import MaasBackupCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

extension RT {
    /// A copy of `archive` in `dir` whose dump.sql is `transform`ed, with the manifest's dump size
    /// and sha256 made to fit (so that the plain verify passes and only the load can tell).
    static func rewrittenDump(_ archive: String, in dir: String, _ transform: (String) throws -> String) throws -> String {
        var members = try readMembers(archive)
        let di = try #require(members.firstIndex { $0.header.path == "dump.sql" })
        members[di].data = Array(try transform(String(decoding: members[di].data, as: UTF8.self)).utf8)
        var man = try manifest(in: members)
        man.dump.size = Int64(members[di].data.count)
        man.dump.sha256 = try sha256Hex(members[di].data)
        try replaceManifest(&members, man)
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let out = dir + "/" + (archive as NSString).lastPathComponent
        try writeArchive(members, to: out)
        return out
    }

    /// Inserts `text` after the first line that starts with `prefix`, at or after `from`.
    static func insert(_ text: String, afterLineStarting prefix: String, in dump: String, last: Bool = false) throws -> String {
        var lines = dump.components(separatedBy: "\n")
        let i = try #require(last ? lines.lastIndex { $0.hasPrefix(prefix) } : lines.firstIndex { $0.hasPrefix(prefix) },
                             "no line starts with \(prefix)")
        lines.insert(text, at: i + 1)
        return lines.joined(separator: "\n")
    }
}

extension TestEnv {
    /// The cluster's databases but the templates, sorted.
    func databases() throws -> [String] {
        try psql("SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1", db: "postgres")
            .split(separator: "\n").map(String.init)
    }

    /// Databases a restore made besides the live ones (restoring, pre-restore, failed-restore copies).
    func restoreCopies() throws -> [String] {
        try databases().filter { $0.contains("_restoring_") || $0.contains("_pre_restore_") || $0.contains("_failed_restore_") }
    }

    func dropRestoreCopies() throws {
        for d in try restoreCopies() { _ = try psql("DROP DATABASE \"\(d)\" WITH (FORCE)", db: "postgres") }
    }
}

/// The database part of `restore` and `verify --deep`: a new database, loaded, checked, then swapped
/// in by name; untrusted dump.sql never runs psql meta-commands; privileges checked first.
@Suite("database restore", .serialized, .enabled(if: TestEnv.skipReason == nil, "\(TestEnv.skipReason ?? "")"), .sharedEnv("dbrestore"))
struct DatabaseRestoreTests {
    var shared: SharedEnv { get throws { try SharedEnv.get() } }

    func eventCount(_ env: TestEnv, db: String = "maasdb") throws -> Int {
        Int(try env.psql("SELECT count(*) FROM maasserver_event", db: db)) ?? -1
    }

    func servicesActive(_ env: TestEnv) throws -> Bool {
        try env.isActive("maas-regiond") && env.isActive("maas-rackd")
    }

    @Test("an archive whose dump.sql holds \\! commands never runs them, in restore or in verify --deep")
    func metaCommandsNeverRun() throws {
        let shared = try shared
        let env = shared.env
        let archive = try shared.baselineArchive()
        let marks = (1...4).map { "/tmp/msb-pwned-\(getpid())-\($0)" }
        for m in marks { try? FileManager.default.removeItem(atPath: m) }
        // In the roles part (a privileged connection) RolesGate refuses the archive before anything
        // changes (65); in a database's part psql, restricted by our key, refuses them.
        let roles = try RT.rewrittenDump(archive, in: env.dir + "/meta-roles") { dump in
            try RT.insert("\\! touch \(marks[0])", afterLineStarting: "SET client_encoding", in: dump)
        }
        let database = try RT.rewrittenDump(archive, in: env.dir + "/meta") { dump in
            var d = try RT.insert("\\! touch \(marks[1])", afterLineStarting: "\\connect maasdb", in: dump, last: true)
            d = try RT.insert("SELECT 1 \\! touch \(marks[2])", afterLineStarting: "SET row_security", in: d, last: true)
            return try RT.insert("\\setenv X 1\n\\o |touch \(marks[3])\nSELECT 1;", afterLineStarting: "\\connect maasdb", in: d)
        }
        for (bad, status, message) in [(roles, Int32(65), "psql meta-command"), (database, Int32(1), "backslash commands are restricted")] {
            _ = try env.psql("DELETE FROM maasserver_event WHERE id % 5 = 0")
            let events = try eventCount(env)
            let r = try RT.tool(env, ["restore", bad, "--yes"])
            for m in marks { #expect(!FileManager.default.fileExists(atPath: m), "restore ran a meta-command: \(m) exists") }
            #expect(r.status == status, "\(r.stderr)")
            #expect(r.stderr.contains(message), "\(r.stderr)")
            #expect(try eventCount(env) == events, "the live database changed")
            let copies = try env.restoreCopies()
            #expect(copies.isEmpty, "\(copies)")
            #expect(try servicesActive(env))

            let deep = try RT.tool(env, ["verify", bad, "--deep"])
            for m in marks { #expect(!FileManager.default.fileExists(atPath: m), "verify --deep ran a meta-command: \(m) exists") }
            #expect(deep.status == 65, "\(deep.stderr)")
            #expect(deep.stderr.contains(message), "\(deep.stderr)")
        }
        for m in marks { try? FileManager.default.removeItem(atPath: m) }
        RT.removeAsideFolders(root: env.root)
    }

    @Test("a dump that fails late leaves the live database as it was and no half-loaded copy")
    func lateFailureLosesNothing() throws {
        let shared = try shared
        let env = shared.env
        let archive = try shared.baselineArchive()
        // The last table's COPY gets a row with 300 columns: it fails after everything before it loaded.
        let bad = try RT.rewrittenDump(archive, in: env.dir + "/late") { dump in
            try RT.insert(String(repeating: "\t", count: 300) + "x", afterLineStarting: "COPY ", in: dump, last: true)
        }
        _ = try env.psql("DELETE FROM maasserver_event WHERE id % 7 = 0")
        let events = try eventCount(env)
        let r = try RT.tool(env, ["restore", bad, "--yes"])
        #expect(r.status == 1, "\(r.stderr)")
        #expect(r.stderr.contains("22P04") || r.stderr.contains("extra data"), "\(r.stderr)")
        #expect(r.stderr.contains("the database was not changed"), "\(r.stderr)")
        #expect(try eventCount(env) == events, "the live maasdb lost its rows")
        let copies = try env.restoreCopies()
        #expect(copies.isEmpty, "\(copies)")
        #expect(try servicesActive(env))
        #expect(RT.asideFolders(root: env.root).isEmpty)
    }

    @Test("a role without CREATEDB is refused in preflight (69) with nothing changed")
    func nonSuperuserRefused() throws {
        let shared = try shared
        let env = shared.env
        let archive = try shared.baselineArchive()
        let config = try String(contentsOfFile: env.config, encoding: .utf8).replacingOccurrences(of: "  user: postgres\n", with: "  user: maas\n")
        let maasConfig = env.dir + "/config-maas.yaml"
        try config.write(toFile: maasConfig, atomically: true, encoding: .utf8)
        let events = try eventCount(env)
        let before = RT.fingerprint(root: env.root)
        let calls = (try? String(contentsOfFile: env.dir + "/svc/calls.log", encoding: .utf8)) ?? ""

        let r = try env.tool(["restore", archive, "--yes"], config: maasConfig)
        #expect(r.status == 69, "\(r.stderr)")
        #expect(r.stderr.contains("CREATEDB") && r.stderr.contains("database.restore_user"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").filter { $0.contains("error:") }.count == 1, "one line: \(r.stderr)")
        let callsAfter = (try? String(contentsOfFile: env.dir + "/svc/calls.log", encoding: .utf8)) ?? ""
        #expect(!callsAfter.dropFirst(calls.count).contains(" stop "), "services were stopped")
        #expect(try eventCount(env) == events)
        #expect(RT.diff(before, RT.fingerprint(root: env.root)).isEmpty)
        #expect(try env.restoreCopies().isEmpty)

        // CREATEDB but not the owner of maasdb: refused as well, naming the database.
        _ = try env.psql("ALTER ROLE maas CREATEDB", db: "postgres")
        defer { _ = try? env.psql("ALTER ROLE maas NOCREATEDB", db: "postgres") }
        _ = try env.psql("ALTER DATABASE maasdb OWNER TO postgres", db: "postgres")
        let r2 = try env.tool(["restore", archive, "--yes"], config: maasConfig)
        _ = try env.psql("ALTER DATABASE maasdb OWNER TO maas", db: "postgres")
        #expect(r2.status == 69, "\(r2.stderr)")
        #expect(r2.stderr.contains("maasdb") && r2.stderr.contains("own"), "\(r2.stderr)")
        #expect(try env.restoreCopies().isEmpty)

        // database.restore_user supplies a stronger role for restore: the plan then passes preflight.
        let withRestoreUser = config.replacingOccurrences(of: "  user: maas\n", with: "  user: maas\n  restore_user: postgres\n")
        try withRestoreUser.write(toFile: maasConfig, atomically: true, encoding: .utf8)
        let passes = try env.tool(["restore", archive, "--yes"], env: ["MSB_TEST_FAIL_AFTER": "restore-stop"], config: maasConfig)
        #expect(passes.status == 1 && passes.stderr.contains("injected failure after step 'restore-stop'"), "\(passes.stderr)")
        #expect(try servicesActive(env))
    }

    @Test("a successful restore swaps the new database in and keeps the previous one as <name>_pre_restore_<time>")
    func successKeepsPrevious() throws {
        let shared = try shared
        let env = shared.env
        let archive = try shared.baselineArchive()
        let m = try RT.manifest(sidecarOf: archive)
        _ = try env.psql("DELETE FROM maasserver_event WHERE id % 4 = 0")
        let events = try eventCount(env)
        let r = try RT.tool(env, ["restore", archive, "--yes", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let j = RT.json(r)
        let previous = (j["previous_databases"] as? [String]) ?? []
        #expect(previous.count == 1 && previous[0].hasPrefix("maasdb_pre_restore_"), "\(j)")
        #expect(try env.restoreCopies() == previous)
        if let p = previous.first {
            #expect(try eventCount(env, db: p) == events, "the previous database does not hold the previous rows")
        }
        #expect(try eventCount(env) == Int(m.database.rowCounts["maasdb"]?["public.maasserver_event"] ?? -1))
        #expect(((j["drop_previous_databases"] as? [String]) ?? []).first?.contains("dropdb") == true, "\(j)")
        #expect(try servicesActive(env))
        try env.dropRestoreCopies()
        RT.removeAsideFolders(root: env.root)
    }

    @Test("as a non-superuser that owns maasdb and has CREATEDB (a remote region's maas role) restore works and leaves the roles alone")
    func nonSuperuserOwnerRestores() throws {
        let shared = try shared
        let env = shared.env
        _ = try shared.baselineArchive()
        let maasConfig = env.dir + "/config-maas-owner.yaml"
        try String(contentsOfFile: env.config, encoding: .utf8).replacingOccurrences(of: "  user: postgres\n", with: "  user: maas\n")
            .write(toFile: maasConfig, atomically: true, encoding: .utf8)
        // maas owns maasdb and everything in it, as on a region whose database MAAS made itself.
        _ = try env.psql("ALTER ROLE maas CREATEDB", db: "postgres")
        _ = try env.psql("ALTER DATABASE maasdb OWNER TO maas", db: "postgres")
        defer { _ = try? env.psql("ALTER ROLE maas NOCREATEDB", db: "postgres") }
        _ = try env.psql("""
            DO $$ DECLARE r record; BEGIN
              FOR r IN SELECT c.oid::regclass AS n FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
                       WHERE s.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f') LOOP
                EXECUTE format('ALTER TABLE %s OWNER TO maas', r.n);
              END LOOP;
              FOR r IN SELECT c.oid::regclass AS n FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
                       WHERE s.nspname = 'public' AND c.relkind = 'S' AND pg_get_userbyid(c.relowner) <> 'maas' LOOP
                EXECUTE format('ALTER SEQUENCE %s OWNER TO maas', r.n);
              END LOOP;
              FOR r IN SELECT p.oid::regprocedure AS n FROM pg_proc p JOIN pg_namespace s ON s.oid = p.pronamespace WHERE s.nspname = 'public' LOOP
                EXECUTE format('ALTER ROUTINE %s OWNER TO maas', r.n);
              END LOOP;
              FOR r IN SELECT t.oid::regtype AS n FROM pg_type t JOIN pg_namespace s ON s.oid = t.typnamespace
                       WHERE s.nspname = 'public' AND t.typtype IN ('e', 'd', 'r') LOOP
                EXECUTE format('ALTER TYPE %s OWNER TO maas', r.n);
              END LOOP;
              FOR r IN SELECT oid FROM pg_largeobject_metadata LOOP
                EXECUTE format('ALTER LARGE OBJECT %s OWNER TO maas', r.oid);
              END LOOP;
            END $$
            """)
        let b = try env.tool(["--json", "--reason", "as maas"], config: maasConfig)
        #expect(b.status == 0, "backup as maas: \(b.stderr)")
        let archive = try #require(RT.json(b)["archive"] as? String)
        defer { for x in ["", ".manifest.json", ".verified"] { try? FileManager.default.removeItem(atPath: archive + x) } }
        let m = try RT.manifest(sidecarOf: archive)
        _ = try env.psql("DELETE FROM maasserver_event WHERE id % 6 = 0")
        let events = try eventCount(env)

        let r = try env.tool(["restore", archive, "--yes", "--json"], config: maasConfig)
        #expect(r.status == 0, "restore as maas: \(r.stderr)")
        let j = RT.json(r)
        let warnings = (j["warnings"] as? [String]) ?? []
        #expect(warnings.contains { $0.contains("refused for lack of privilege") && $0.contains("42501") }, "\(warnings)")
        let previous = (j["previous_databases"] as? [String]) ?? []
        #expect(previous.count == 1, "\(j)")
        if let p = previous.first { #expect(try eventCount(env, db: p) == events) }
        #expect(try eventCount(env) == Int(m.database.rowCounts["maasdb"]?["public.maasserver_event"] ?? -1))
        #expect(try env.psql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'maasdb'", db: "postgres") == "maas")
        #expect(try env.psql("SELECT rolsuper FROM pg_roles WHERE rolname = 'postgres'", db: "postgres") == "t")
        #expect(try servicesActive(env))
        try env.dropRestoreCopies()
        RT.removeAsideFolders(root: env.root)
    }

    @Test("a load in 4 sessions with COPY cut every 16 KiB gives the database one session gives: schema, rows, sequence values, large objects")
    func parallelLoadEqualsOneSession() throws {
        let shared = try shared
        let env = shared.env
        let archive = try shared.baselineArchive()
        /// The restored database as pg_dump sees it, less the stand-in daemons' counter (they write it once started).
        func dump() throws -> String {
            let r = try TestEnv.sh([TestEnv.pgbin + "/pg_dump", "-h", env.dir + "/pgsock", "-U", "postgres", "--exclude-table-data=public.msb_counter",
                                    "--no-comments", "-d", "maasdb"])
            try #require(r.status == 0, "\(r.stderr)")
            // Rows in each COPY block sorted: sessions side by side store them in another order.
            var out: [Substring] = [], rows: [Substring]?
            for line in r.stdout.split(separator: "\n") where !line.hasPrefix("\\restrict") && !line.hasPrefix("\\unrestrict") {
                if rows != nil && line != "\\." { rows!.append(line); continue }
                if let r = rows { out += r.sorted(); rows = nil }
                out.append(line)
                if line.hasPrefix("COPY ") && line.hasSuffix(" FROM stdin;") { rows = [] }
            }
            return out.joined(separator: "\n")
        }
        func restore(jobs: Int) throws -> String {
            let config = env.dir + "/config-jobs-\(jobs).yaml"
            try String(contentsOfFile: env.config, encoding: .utf8).replacingOccurrences(of: "  name: maasdb\n", with: "  name: maasdb\n  load_jobs: \(jobs)\n")
                .write(toFile: config, atomically: true, encoding: .utf8)
            let r = try env.tool(["restore", archive, "--yes"], env: ["MSB_TEST_LOAD_CHUNK": "16384"], config: config)
            try #require(r.status == 0, "\(r.stderr)")
            #expect(r.stderr.contains("\(jobs) session(s) per database"), "\(r.stderr)")
            return try dump()
        }
        let one = try restore(jobs: 1)
        let four = try restore(jobs: 4)
        #expect(one.contains("COPY public.maasserver_event") && one.contains("lo_open") && one.contains("SELECT pg_catalog.setval"))
        #expect(one.contains("FOREIGN KEY") && one.contains("CREATE INDEX") && one.contains("CREATE TRIGGER"))
        let a = one.split(separator: "\n"), b = four.split(separator: "\n")
        let firstDiff = zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }
        #expect(a.count == b.count && firstDiff == nil,
                "\(a.count) against \(b.count) lines; first difference at \(firstDiff.map { "\($0.offset): \($0.element.0) | \($0.element.1)" } ?? "-")")
        #expect(try servicesActive(env))
        try env.dropRestoreCopies()
        RT.removeAsideFolders(root: env.root)
    }

    @Test("scope all: every database (postgres included) is loaded into its copy with its settings and swapped in; the previous ones are kept")
    func scopeAll() throws {
        let shared = try shared
        let env = shared.env
        _ = try shared.baselineArchive()
        let allConfig = env.dir + "/config-all.yaml"
        try String(contentsOfFile: env.config, encoding: .utf8).replacingOccurrences(of: "  name: maasdb\n", with: "  name: maasdb\n  scope: all\n")
            .write(toFile: allConfig, atomically: true, encoding: .utf8)
        // Restore loads each database as its owner, never a superuser: here maas owns all three.
        _ = try env.psql("CREATE DATABASE \"other db\" OWNER maas", db: "postgres")
        defer { _ = try? env.psql("DROP DATABASE IF EXISTS \"other db\" WITH (FORCE)", db: "postgres") }
        _ = try env.psql("ALTER DATABASE postgres OWNER TO maas", db: "postgres")
        defer { _ = try? env.psql("ALTER DATABASE postgres OWNER TO postgres", db: "postgres") }
        _ = try env.psql("ALTER DATABASE \"other db\" SET work_mem = '7MB'", db: "postgres")
        _ = try env.psql("COMMENT ON DATABASE \"other db\" IS 'kept by the restore'", db: "postgres")
        _ = try env.psql("SET ROLE maas; CREATE TABLE t (a int); INSERT INTO t VALUES (1), (2)", db: "other db")
        _ = try env.psql("SET ROLE maas; CREATE TABLE msb_pt (a int); INSERT INTO msb_pt VALUES (5)", db: "postgres")
        defer { _ = try? env.psql("DROP TABLE IF EXISTS msb_pt", db: "postgres") }
        let b = try env.tool(["--json", "--reason", "scope all"], config: allConfig)
        #expect(b.status == 0, "\(b.stderr)")
        let archive = try #require(RT.json(b)["archive"] as? String)
        defer { for x in ["", ".manifest.json", ".verified"] { try? FileManager.default.removeItem(atPath: archive + x) } }
        _ = try env.psql("INSERT INTO t VALUES (3)", db: "other db")
        _ = try env.psql("INSERT INTO msb_pt VALUES (6)", db: "postgres")

        let r = try env.tool(["restore", archive, "--yes", "--json"], config: allConfig)
        #expect(r.status == 0, "\(r.stderr)")
        let previous = ((RT.json(r)["previous_databases"] as? [String]) ?? []).sorted()
        #expect(previous.map { $0.components(separatedBy: "_pre_restore_")[0] } == ["maasdb", "other db", "postgres"], "\(previous)")
        #expect(try env.psql("SELECT count(*) FROM t", db: "other db") == "2")
        #expect(try env.psql("SELECT string_agg(a::text, ',') FROM msb_pt", db: "postgres") == "5")
        #expect(try env.psql("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = 'other db'", db: "postgres") == "kept by the restore")
        #expect(try env.psql("SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = 'other db'",
                             db: "postgres") == "work_mem=7MB")
        if let p = previous.first(where: { $0.hasPrefix("other db") }) { #expect(try env.psql("SELECT count(*) FROM t", db: p) == "3") }
        #expect(try servicesActive(env))
        try env.dropRestoreCopies()
        RT.removeAsideFolders(root: env.root)
    }
}
