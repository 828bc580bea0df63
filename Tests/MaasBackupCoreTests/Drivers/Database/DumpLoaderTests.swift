import Foundation
import Testing
@testable import MaasBackupCore

/// The restore's dump.sql handling without a server: psql's messages by SQLSTATE (in any language),
/// the split at \connect, what is never run, and the psql versions that can refuse meta-commands.
@Suite struct DumpLoaderTests {
    @Test func psqlMessagesAreSortedBySQLSTATENotByTheirLanguage() {
        let log = """
            psql:<stdin>:12: FEHLER:  42710: Rolle »maas« existiert bereits
            ORT:  CreateRole, user.c:308
            psql:<stdin>:13: ERREUR:  2BP01: le rôle « maas » ne peut pas être supprimé car d'autres objets en dépendent
            DÉTAIL : propriétaire de la base de données maasdb
            psql:<stdin>:14: ОШИБКА:  55006: удалить текущего пользователя нельзя
            psql:<stdin>:15: ERROR:  42501: permission denied to create role
            psql:<stdin>:16: WARNUNG:  01000: eine Warnung
            psql:<stdin>:17: HINWEIS:  00000: eine Notiz
            psql:<stdin>:18: ERREUR:  23505: la valeur d'une clé dupliquée rompt la contrainte unique « x »
            psql:<stdin>:19: error: backslash commands are restricted; only \\unrestrict is allowed
            psql: error: connection to server on socket "/run/postgresql/.s.PGSQL.5432" failed: FATAL:  database "x" does not exist
            """
        let roles = PsqlMessages.classify(Substring(log), context: .cluster)
        #expect(roles.expected.map(\.sqlstate) == ["42710", "2BP01", "55006"])
        #expect(roles.refused.map(\.sqlstate) == ["42501"])
        #expect(roles.errors.map(\.sqlstate) == ["23505", nil, nil])
        #expect(roles.errors.first?.psqlLine == 18)

        // In a database's part nothing is expected: a duplicate object there is an error too.
        let db = PsqlMessages.classify(Substring(log), context: .database("maasdb"))
        #expect(db.expected.isEmpty && db.refused.isEmpty)
        #expect(db.errors.map(\.sqlstate) == ["42710", "2BP01", "55006", "42501", "23505", nil, nil])
    }

    func split(_ dump: String, names: [String: String] = ["maasdb": "maasdb_restoring_T"]) throws -> (parts: [(DumpContext, [String])], creates: [String]) {
        var s = DumpSplitter(names: names)
        var parts: [(DumpContext, [String])] = [(.cluster, [])]
        var creates: [String] = []
        for (i, line) in dump.components(separatedBy: "\n").enumerated() {
            switch try s.next(line, number: i + 1) {
            case .pass: parts[parts.count - 1].1.append(line)
            case .rewrite(let t): parts[parts.count - 1].1.append(t)
            case .skip: break
            case .connect(let ctx):
                if case .database(let d) = ctx, !s.created.contains(d) {
                    creates.append(try #require(s.spec(for: d)).statement(newName: names[d]!))
                    s.markCreated(d)
                }
                parts.append((ctx, []))
            }
        }
        return (parts, creates)
    }

    @Test func theDumpIsSplitAtConnectAndNeverDropsOrCreatesTheLiveDatabase() throws {
        let dump = """
            SET client_encoding = 'UTF8';
            \\connect template1
            DROP DATABASE IF EXISTS "maasdb";
            \\restrict dumpkey1
            DROP ROLE IF EXISTS maas;
            CREATE ROLE maas;
            \\unrestrict dumpkey1
            CREATE DATABASE maasdb WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER = libc LOCALE = 'C.UTF-8';
            ALTER DATABASE maasdb OWNER TO maas;
            \\encoding SQL_ASCII
            \\connect maasdb
            COMMENT ON DATABASE maasdb IS 'the maas db';
            ALTER DATABASE maasdb SET work_mem TO '8MB';
            ALTER ROLE maas IN DATABASE maasdb SET work_mem TO '9MB';
            \\connect maasdb
            COPY public.t (a, b) FROM stdin;
            1\tx
            \\connect postgres
            \\! touch /tmp/x
            \\.
            REVOKE CONNECT,TEMPORARY ON DATABASE maasdb FROM PUBLIC;
            SELECT 1 \\! touch /tmp/y
            \\! touch /tmp/z
            """
        let (parts, creates) = try split(dump)
        #expect(parts.map(\.0) == [.cluster, .cluster, .database("maasdb"), .database("maasdb")])
        #expect(creates == [#"CREATE DATABASE "maasdb_restoring_T" WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER = libc LOCALE = 'C.UTF-8' OWNER = "maas""#])
        let all = parts.flatMap(\.1)
        #expect(!all.contains { $0.hasPrefix("DROP DATABASE") || $0.hasPrefix("CREATE DATABASE") || $0.contains("OWNER TO") })
        #expect(!all.contains { $0.hasPrefix("\\restrict") || $0.hasPrefix("\\unrestrict") || $0.hasPrefix("\\encoding") })
        #expect(parts[1].1 == ["DROP ROLE IF EXISTS maas;", "CREATE ROLE maas;"])
        #expect(parts[2].1 == [#"COMMENT ON DATABASE "maasdb_restoring_T" IS 'the maas db';"#,
                               #"ALTER DATABASE "maasdb_restoring_T" SET work_mem TO '8MB';"#,
                               #"ALTER ROLE maas IN DATABASE "maasdb_restoring_T" SET work_mem TO '9MB';"#])
        // COPY data is data (a \connect in it does not split); after it, meta-commands go to psql,
        // which refuses them under our \restrict key.
        #expect(parts[3].1 == ["COPY public.t (a, b) FROM stdin;", "1\tx", "\\connect postgres", "\\! touch /tmp/x", "\\.",
                               #"REVOKE CONNECT,TEMPORARY ON DATABASE "maasdb_restoring_T" FROM PUBLIC;"#,
                               "SELECT 1 \\! touch /tmp/y", "\\! touch /tmp/z"])
    }

    @Test func aDumpThatReachesBeyondItsDatabasesIsRefused() throws {
        #expect(throws: BackupError.self) { try split("\\connect otherdb") }
        #expect(throws: BackupError.self) { try split("\\connect maasdb") }  // before its CREATE DATABASE
        #expect(throws: BackupError.self) { try split("CREATE DATABASE otherdb;") }
        #expect(throws: BackupError.self) { try split("CREATE DATABASE maasdb WITH LOCALE = 'C''; DROP DATABASE x; --';") }
        #expect(throws: BackupError.self) { try split("CREATE DATABASE maasdb WITH EVIL = 1;") }
        #expect(throws: BackupError.self) { try split("ALTER DATABASE maasdb SET work_mem TO '1MB';") }  // would hit the live one
        #expect(throws: BackupError.self) { try split("CREATE DATABASE maasdb;\nALTER DATABASE maasdb RENAME TO x;") }
    }

    @Test func connectArgumentsAsPgDumpWritesThem() {
        #expect(DumpSplitter.connectTarget("maasdb") == "maasdb")
        #expect(DumpSplitter.connectTarget(#"-reuse-previous=on "dbname='we""ird db'""#) == #"we"ird db"#)
        #expect(DumpSplitter.connectTarget(#"-reuse-previous=on "dbname='it\'s'""#) == "it's")
        #expect(DumpSplitter.connectTarget("host=/tmp dbname=x") == nil)
    }

    @Test func psqlVersionsThatCanRestrictMetaCommands() {
        for v in ["15.14", "15.18", "16.10", "17.6", "14.19", "13.22", "18.0", "18beta1"] { #expect(DatabaseSwap.supportsRestrict(v), "\(v)") }
        for v in ["15.13", "16.9", "17.5", "14.18", "13.21", "12.22", ""] { #expect(!DatabaseSwap.supportsRestrict(v), "\(v)") }
    }

    @Test func restoreUserKeys() throws {
        let c = try Config.parse(yaml: "database:\n  restore_user: maas_admin\n  restore_password_file: /etc/x\n")
        #expect(c.database.restoreUser == "maas_admin" && c.database.restorePasswordFile == "/etc/x")
        #expect(throws: BackupError.self) { try Config.parse(yaml: "database:\n  restore_password_file: /etc/x\n") }
        #expect(throws: BackupError.self) { try Config.parse(yaml: "database:\n  restore_user: ''\n") }
    }
}
