import Foundation
import TestSupport
import MaasBackupCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The usual HA layout: the MAAS database on another PostgreSQL server, reached over TCP with a
/// password as the `maas` role, which owns the database and may create databases but is no superuser.
/// The "remote" server here is a second throwaway cluster listening on 127.0.0.1 with scram-sha-256.
@Suite(.serialized, .enabled(if: TestEnv.skipReason == nil && TestEnv.schemaPresent,
                              "\(TestEnv.skipReason ?? "../shared/fixtures/maas-schema is absent: the remote test loads the real 3.4.0 schema")"))
final class RemoteDatabaseTests {
    let env: TestEnv
    let dir: String
    let port: Int
    static let password = "remote-secret-\(getpid())"

    static func freePort() -> Int { freeLocalPort(from: 20000 + Int(getpid()) % 20000, step: 7) }

    init() throws {
        env = try TestEnv(name: "remote")
        dir = env.dir + "/remote-pg"
        port = Self.freePort()
        try FileManager.default.createDirectory(atPath: dir + "/sock", withIntermediateDirectories: true)
        _ = try TestEnv.sh(["chown", "-R", "postgres", dir])
        var r = try TestEnv.sh(["runuser", "-u", "postgres", "--", TestEnv.pgbin + "/initdb", "-D", dir + "/data", "-U", "postgres",
                                "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"])
        guard r.status == 0 else { throw TestFailure("initdb: \(r.stderr)") }
        r = try TestEnv.sh(["runuser", "-u", "postgres", "--", TestEnv.pgbin + "/pg_ctl", "-D", dir + "/data", "-l", dir + "/log", "-w",
                            "-o", "-c listen_addresses=127.0.0.1 -c port=\(port) -c unix_socket_directories='\(dir)/sock' -c fsync=off", "start"])
        guard r.status == 0 else { throw TestFailure("pg_ctl start: \(r.stderr)") }
        // As MAAS sets it up: the maas role owns maasdb and everything in it.
        _ = try sql("CREATE ROLE maas LOGIN CREATEDB PASSWORD '\(Self.password)'", db: "postgres")
        _ = try sql("CREATE DATABASE maasdb OWNER maas", db: "postgres")
        let schema = TestEnv.repo.deletingLastPathComponent().path + "/shared/fixtures/maas-schema/maas-3.4.0.sql"
        r = try TestEnv.sh([TestEnv.pgbin + "/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", dir + "/sock", "-p", String(port),
                            "-U", "maas", "-d", "maasdb", "-f", schema])
        guard r.status == 0 else { throw TestFailure("loading the schema as maas: \(r.stderr)") }
        _ = try sql("""
            INSERT INTO maasserver_eventtype (created, updated, name, description, level)
              SELECT now(), now(), 'REMOTE_' || g, 'remote event type ' || g, 20 FROM generate_series(1, 5) g;
            INSERT INTO maasserver_event (created, updated, action, description, type_id, node_hostname, username, user_agent, endpoint)
              SELECT now(), now(), 'deploy', 'remote ' || g, (SELECT min(id) FROM maasserver_eventtype), 'node-' || g, 'admin', 'test', 0
              FROM generate_series(1, 300) g;
            """, as: "maas")
        // The tool's config: this database over TCP with a password file, the test env's tree and services.
        let pw = env.dir + "/remote-password"
        try (Self.password + "\n").write(toFile: pw, atomically: false, encoding: .utf8)
        chmod(pw, 0o600)
        var cfg = try String(contentsOfFile: env.config, encoding: .utf8)
        let start = try #require(cfg.range(of: "database:\n"))
        let end = try #require(cfg.range(of: "lock_file:"))
        cfg.replaceSubrange(start.lowerBound..<end.lowerBound, with: """
            database:
              host: 127.0.0.1
              port: \(port)
              user: maas
              name: maasdb
              password_file: \(pw)

            """)
        try cfg.write(toFile: env.dir + "/config-remote.yaml", atomically: true, encoding: .utf8)
    }

    deinit {
        _ = try? TestEnv.sh(["runuser", "-u", "postgres", "--", TestEnv.pgbin + "/pg_ctl", "-D", dir + "/data", "-m", "immediate", "-w", "stop"])
        env.down()
    }

    var config: String { env.dir + "/config-remote.yaml" }

    @discardableResult
    func sql(_ q: String, db: String = "maasdb", as user: String = "postgres") throws -> String {
        let r = try TestEnv.sh([TestEnv.pgbin + "/psql", "-X", "-qtA", "-v", "ON_ERROR_STOP=1", "-h", dir + "/sock", "-p", String(port),
                                "-U", user, "-d", db, "-c", q])
        guard r.status == 0 else { throw TestFailure("psql: \(r.stderr)") }
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test("backup and restore as the maas role over TCP with a password: a new database, checked, swapped in; the previous one kept; the password never in argv or logs")
    func remoteRoundTrip() throws {
        let b = try env.tool(["--json"], config: config)
        #expect(b.status == 0, "backup: \(b.stderr)")
        let archive = try #require(RT.json(b)["archive"] as? String)
        let m = try RT.manifest(sidecarOf: archive)
        let want = try #require(m.database.rowCounts["maasdb"]?["public.maasserver_event"])
        #expect(want == 300)
        #expect(!b.stderr.contains(Self.password))

        try sql("DELETE FROM maasserver_event WHERE id % 2 = 0", as: "maas")
        #expect(try sql("SELECT count(*) FROM maasserver_event") == "150")

        let r = try env.tool(["restore", archive, "--yes", "--json"], config: config)
        #expect(r.status == 0, "restore: \(r.stderr)")
        #expect(!r.stderr.contains(Self.password) && !r.stdout.contains(Self.password), "the password leaked")
        #expect(try sql("SELECT count(*) FROM maasserver_event") == "300")
        #expect(try sql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'maasdb'", db: "postgres") == "maas")
        let previous = try sql("SELECT datname FROM pg_database WHERE datname LIKE 'maasdb_pre_restore_%'", db: "postgres")
        #expect(!previous.isEmpty, "no previous database kept")
        if !previous.isEmpty { #expect(try sql("SELECT count(*) FROM maasserver_event", db: previous) == "150") }
        #expect(try sql("SELECT count(*) FROM pg_database WHERE datname LIKE '%_restoring_%' OR datname LIKE '%_failed_restore_%'", db: "postgres") == "0")
        // The roles part cannot change roles as a non-superuser: a warning, not a failure.
        let warnings = (RT.json(r)["warnings"] as? [String]) ?? []
        #expect(warnings.contains { $0.contains("role statement") }, "\(warnings)")
        #expect(try env.isActive("maas-regiond"))
    }
}
