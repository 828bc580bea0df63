import Foundation
import Testing
@testable import MaasBackupCore

/// dump.sql's roles part runs on a privileged connection: statement by statement, only what the
/// gate allows reaches psql, as our own text (issue 23).
@Suite struct RolesGateTests {
    /// postgres a superuser; maas (MAAS's, owns maasdb) with CREATEDB; otherapp another application's role.
    func gate(liveOwners: Set<String> = ["maas"]) -> RolesGate {
        RolesGate(live: ["postgres": RoleStatement.strong, "maas": ["CREATEDB"], "otherapp": []], liveOwners: liveOwners)
    }

    /// Feeds `dump` (a roles part) line by line, then fixes the roles with `owners`; the statements sent.
    func run(_ dump: String, gate g: RolesGate? = nil, owners: [String] = ["maas"]) throws -> (sent: [String], notes: [String]) {
        var g = g ?? gate()
        var sent: [String] = []
        for (i, line) in dump.components(separatedBy: "\n").enumerated() { sent += try g.feed(line, number: i + 1) }
        sent += try g.fix(owners: owners)
        return (sent, g.notes)
    }

    func refusedLine(_ dump: String, gate g: RolesGate? = nil) -> String? {
        do { _ = try run(dump, gate: g); return nil } catch let e as BackupError {
            #expect(e.code == .dataError)
            return e.message
        } catch { return "\(error)" }
    }

    static let normal = """
        --
        -- Roles
        --

        SET default_transaction_read_only = off;
        SET client_encoding = 'UTF8';
        SET standard_conforming_strings = on;
        DROP ROLE IF EXISTS maas;
        DROP ROLE IF EXISTS otherapp;
        DROP ROLE IF EXISTS postgres;
        CREATE ROLE maas;
        ALTER ROLE maas WITH NOSUPERUSER INHERIT NOCREATEROLE CREATEDB LOGIN NOREPLICATION NOBYPASSRLS PASSWORD 'SCRAM-SHA-256$4096:a''b\\c';
        CREATE ROLE otherapp;
        ALTER ROLE otherapp WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS PASSWORD 'md5old';
        CREATE ROLE postgres;
        ALTER ROLE postgres WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS;
        COMMENT ON ROLE maas IS 'MAAS
        region';
        GRANT otherapp TO postgres GRANTED BY postgres;
        CREATE TABLESPACE fast OWNER postgres LOCATION '/srv/fast';
        ALTER ROLE otherapp SET search_path TO 'x';
        SELECT pg_catalog.set_config('search_path', '', false);
        """

    @Test func aNormalRolesPartChangesOnlyMAASsRoleAndNeverDrops() throws {
        let (sent, notes) = try run(Self.normal)
        #expect(sent == [
            #"ALTER ROLE "maas" WITH NOSUPERUSER INHERIT NOCREATEROLE CREATEDB LOGIN NOREPLICATION NOBYPASSRLS PASSWORD E'SCRAM-SHA-256$4096:a''b\\c';"#,
            "COMMENT ON ROLE \"maas\" IS E'MAAS\nregion';",
        ])
        #expect(!sent.contains { $0.contains("DROP") || $0.contains("otherapp") || $0.contains("postgres") })
        #expect(notes.contains { $0.contains("otherapp, postgres") }, "\(notes)")
        #expect(notes.contains { $0.contains("tablespace") } && notes.contains { $0.contains("settings of the role otherapp") }, "\(notes)")
    }

    @Test func onAFreshClusterMAASsRoleIsCreatedButNeverGetsStrongerThanNothing() throws {
        let fresh = RolesGate(live: ["postgres": RoleStatement.strong], liveOwners: [])
        let (sent, notes) = try run(Self.normal, gate: fresh)
        #expect(sent.first == "CREATE ROLE \"maas\";")
        #expect(sent.count == 3 && sent[1].contains("NOCREATEROLE LOGIN") && !sent[1].contains(" CREATEDB"), "\(sent)")
        #expect(notes.contains { $0.contains("does not get CREATEDB") })
        // Statements are held until the dump names the owner: with none, maas is a role MAAS's
        // databases do not use, and giving a new one CREATEDB is refused.
        #expect(throws: BackupError.self) { try run(Self.normal, gate: fresh, owners: []) }
        #expect(try run("CREATE ROLE maas;\nALTER ROLE maas WITH LOGIN;", gate: fresh, owners: []).sent.isEmpty)
    }

    @Test func escalationsAreRefusedNamingTheLine() throws {
        let m1 = refusedLine("CREATE ROLE maas;\nALTER ROLE maas WITH SUPERUSER;")
        #expect(m1?.contains("dump.sql line 2") == true && m1?.contains("SUPERUSER") == true, "\(m1 ?? "not refused")")
        #expect(refusedLine("ALTER ROLE maas REPLICATION BYPASSRLS;")?.contains("REPLICATION") == true)
        #expect(refusedLine("ALTER ROLE maas CREATEROLE;") != nil)
        let evil = refusedLine("-- x\nCREATE ROLE evil SUPERUSER;")
        #expect(evil?.contains("line 2") == true && evil?.contains("evil") == true, "\(evil ?? "not refused")")
        #expect(refusedLine("CREATE ROLE evil;\nALTER ROLE evil WITH LOGIN BYPASSRLS;") != nil)
        #expect(refusedLine("GRANT postgres TO maas;") != nil)
        #expect(refusedLine("GRANT pg_execute_server_program TO maas;") != nil)
        // A superuser owner is never one of the roles the part may change.
        #expect(refusedLine("ALTER ROLE maas SUPERUSER;", gate: RolesGate(live: ["maas": RoleStatement.strong], liveOwners: ["maas"])) == nil)
    }

    @Test func anythingOutsideTheAllowListIsRefused() {
        for bad in ["COPY (SELECT 1) TO PROGRAM 'touch /tmp/x';", "SET ROLE postgres;", "SET SESSION AUTHORIZATION postgres;",
                    "RESET ROLE;", "DO $$ BEGIN END $$;", "SELECT 1;", "ALTER ROLE :USER SUPERUSER;", "ALTER ROLE maas WITH PASSWORD E'x';",
                    "ALTER ROLE maas RENAME TO x;", "DROP DATABASE maasdb;", "ALTER SYSTEM SET x = 1;", "CREATE EXTENSION plpython3u;",
                    "SET client_encoding = 'UTF8'; ALTER ROLE maas SUPERUSER;", "ALTER ROLE maas WITH LOGIN; -- fine\n",
                    "CREATE ROLE maas\n;\nSELECT pg_sleep(1);", "COMMENT ON ROLE maas IS 'never ended"] {
            let m = refusedLine(bad)
            if bad.hasPrefix("ALTER ROLE maas WITH LOGIN") { #expect(m == nil, "\(bad)"); continue }
            #expect(m != nil, "not refused: \(bad)")
        }
    }
}
