import Foundation
import LibPQ
import MaasBackupCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Backups on real components: PostgreSQL 15, Btrfs on a loop device, and daemons that keep writing.
@Suite(.serialized, .enabled(if: TestEnv.skipReason == nil, "\(TestEnv.skipReason ?? "")"))
final class BackupIntegrationTests {
    let env: TestEnv

    init() throws {
        env = try TestEnv(name: "backup")
    }

    deinit { env.down() }

    func extract(_ archive: String) throws -> String {
        let out = env.dir + "/extract-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let r = try TestEnv.sh(["tar", "--same-owner", "-xpzf", archive, "-C", out])
        #expect(r.status == 0, "tar xzf: \(r.stderr)")
        return out
    }

    func manifest(_ dir: String) throws -> Manifest {
        try Manifest.decode(Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/manifest.json"))))
    }

    /// The counter value in dump.sql's COPY of msb_counter.
    func dumpCounter(_ dir: String) throws -> Int? {
        let text = try String(contentsOfFile: dir + "/dump.sql", encoding: .utf8)
        guard let r = text.range(of: "COPY public.msb_counter (service, n) FROM stdin;\n") else { return nil }
        let line = text[r.upperBound...].prefix { $0 != "\n" }
        return line.split(separator: "\t").last.flatMap { Int($0) }
    }

    func leftovers() -> [String] { env.leftovers() }

    @Test("a backup restores to the same files and rows, at one instant, with MAAS stopped only briefly")
    func roundTrip() throws {
        let r = try env.tool(["--json"])
        #expect(r.status == 0, "backup failed: \(r.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] ?? [:]
        #expect(json["status"] as? String == "ok")
        #expect(json["snapshot_method"] as? String == "btrfs+copy")
        #expect((json["services_stopped"] as? [String])?.sorted() == ["maas-rackd", "maas-regiond"])
        #expect((json["downtime_ms"] as? Double ?? 1e9) < 30_000)
        for key in ["archive", "size_bytes", "window", "duration_ms"] { #expect(json[key] != nil, "missing \(key)") }
        let archive = try #require(json["archive"] as? String)

        // 0600 archive in a 0700 folder, nothing half-done left.
        let attrs = try FileManager.default.attributesOfItem(atPath: archive)
        #expect((attrs[.posixPermissions] as? Int) == 0o600)
        #expect((try FileManager.default.attributesOfItem(atPath: env.backups)[.posixPermissions] as? Int) == 0o700)
        #expect(leftovers().isEmpty, "leftovers: \(leftovers())")
        #expect(URL(fileURLWithPath: archive).lastPathComponent.hasPrefix("maas-backup-"))
        #expect(try TestEnv.sh(["gzip", "-t", archive]).status == 0)

        // Services run again and the daemons keep writing.
        #expect(try env.isActive("maas-regiond"))
        #expect(try env.isActive("maas-rackd"))
        #expect(!(try env.isActive("maas-dhcpd")), "an inactive service must not be started")
        let c1 = try env.liveCounter()
        var later = c1
        for _ in 0..<100 where later <= c1 {  // up to 10 s: each loop of the stand-in starts a psql
            usleep(100_000)
            later = try env.liveCounter()
        }
        #expect(later > c1, "the stand-in regiond stopped writing")

        let x = try extract(archive)
        let m = try manifest(x)
        // Layout of the documented procedure; boot-resources left out.
        #expect(FileManager.default.fileExists(atPath: x + "/etc/maas/regiond.conf"))
        #expect(FileManager.default.fileExists(atPath: x + "/var/lib/maas/secret"))
        #expect(FileManager.default.fileExists(atPath: x + "/dump.sql"))
        #expect(!FileManager.default.fileExists(atPath: x + "/var/lib/maas/boot-resources"))
        #expect(!FileManager.default.fileExists(atPath: x + "/var/lib/maas/.maas-snapshot-backup"))
        #expect(FileManager.default.fileExists(atPath: x + "/var/lib/maas/empty-dir"))

        // Static files byte-identical, with owners and modes.
        for rel in ["etc/maas/regiond.conf", "etc/maas/rackd.conf", "var/lib/maas/secret", "var/lib/maas/image-storage/blob-random",
                    "var/lib/maas/image-storage/blob-text", "var/lib/maas/certificates/maas.crt",
                    "var/lib/maas/certificates/région ü.txt"] {
            let a = try Data(contentsOf: URL(fileURLWithPath: env.root + "/" + rel))
            let b = try Data(contentsOf: URL(fileURLWithPath: x + "/" + rel))
            #expect(a == b, "\(rel) differs")
            let sa = try FileManager.default.attributesOfItem(atPath: env.root + "/" + rel)
            let sb = try FileManager.default.attributesOfItem(atPath: x + "/" + rel)
            #expect(sa[.posixPermissions] as? Int == sb[.posixPermissions] as? Int, "\(rel) mode")
            #expect(sa[.ownerAccountID] as? Int == sb[.ownerAccountID] as? Int, "\(rel) owner")
            #expect(sa[.groupOwnerAccountID] as? Int == sb[.groupOwnerAccountID] as? Int, "\(rel) group")
        }
        // Hard link kept as a hard link, symlink as a symlink.
        let i1 = try FileManager.default.attributesOfItem(atPath: x + "/var/lib/maas/image-storage/blob-text")[.systemFileNumber] as? Int
        let i2 = try FileManager.default.attributesOfItem(atPath: x + "/var/lib/maas/image-storage/blob-text-hardlink")[.systemFileNumber] as? Int
        #expect(i1 != nil && i1 == i2, "hard link lost")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: x + "/var/lib/maas/current-image") == "image-storage/blob-text")

        // One instant: the file counter equals the database counter in the dump.
        let fileCounter = Int(try String(contentsOfFile: x + "/var/lib/maas/counter", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines))
        let dbCounter = try dumpCounter(x)
        #expect(fileCounter != nil && fileCounter == dbCounter, "file counter \(String(describing: fileCounter)) != database counter \(String(describing: dbCounter))")

        // The manifest names every file with its checksum.
        #expect(m.files.contains { $0.path == "var/lib/maas/secret" && $0.sha256 != nil && $0.mode == "0640" })
        #expect(m.window.servicesStopped.sorted() == ["maas-rackd", "maas-regiond"])
        #expect(m.window.steps.map(\.step).contains("pin_database_snapshot"))
        #expect(m.reason == "manual")
        let counts = try #require(m.database.rowCounts["maasdb"])
        #expect(counts["public.msb_counter"] == 1)
        if TestEnv.schemaPresent {
            #expect(m.database.schemaHead.django?.hasPrefix("0") == true)
            #expect((counts["public.maasserver_event"] ?? 0) >= 2000)
        }

        // dump.sql restores into a fresh cluster to the manifest's row counts.
        let fresh = try ScratchCluster(name: "fresh")
        defer { fresh.stop() }
        _ = try fresh.psqlFile(x + "/dump.sql")
        let c = try PQConnection(parameters: [("host", fresh.socket), ("user", "postgres"), ("dbname", "maasdb")])
        let restored = try PostgresAdapter.rowCounts(c)
        c.finish()
        #expect(restored == counts, "row counts after restore differ from the manifest")
        #expect(try fresh.psql("SELECT n FROM msb_counter") == String(dbCounter ?? -1))
        #expect(try fresh.psql("SELECT count(*) FROM pg_largeobject_metadata") == "2")
        #expect(try fresh.psql("SELECT count(*) FROM pg_roles WHERE rolname = 'maas'", db: "postgres") == "1")

        // ...and over the original cluster, as the documented restore does (services stopped first).
        _ = try TestEnv.sh([env.dir + "/bin/systemctl", "stop", "maas-regiond", "maas-rackd"], env: env.environment)
        let over = try TestEnv.sh([TestEnv.pgbin + "/psql", "-X", "-q", "-h", env.dir + "/pgsock", "-U", "postgres", "-d", "postgres", "-f", x + "/dump.sql"])
        #expect(over.status == 0)
        let c2 = try PQConnection(parameters: [("host", env.dir + "/pgsock"), ("user", "postgres"), ("dbname", "maasdb")])
        #expect(try PostgresAdapter.rowCounts(c2) == counts)
        c2.finish()
        _ = try TestEnv.sh([env.dir + "/bin/systemctl", "start", "maas-regiond", "maas-rackd"], env: env.environment)
    }

    @Test("a failure after any window step leaves the services running and nothing half-done",
          arguments: ["stop", "snapshot", "copy", "pin", "start", "archive", "dump", "manifest"])
    func injectedFailure(step: String) throws {
        let before = env.archives()
        let r = try env.tool([], env: ["MSB_TEST_FAIL_AFTER": step])
        #expect(r.status == 1, "exit \(r.status): \(r.stderr)")
        #expect(r.stderr.contains("injected failure after step '\(step)'"))
        #expect(try env.isActive("maas-regiond"), "regiond not running after a failure at \(step)")
        #expect(try env.isActive("maas-rackd"))
        #expect(env.archives() == before, "an archive appeared")
        #expect(leftovers().isEmpty, "leftovers after \(step): \(leftovers())")
    }

    @Test("two runs never overlap: the second waits, or fails naming the holder; SIGTERM cleans up")
    func lockAndSignal() throws {
        let first = try env.start([], env: ["MSB_TEST_PAUSE_AFTER": "archive", "MSB_TEST_PAUSE_SECONDS": "20"])
        // Wait until the first run holds the lock and is archiving.
        var held = false
        for _ in 0..<200 {
            if let s = try? String(contentsOfFile: env.dir + "/lock", encoding: .utf8), s.contains("\(first)") { held = true; break }
            usleep(50_000)
        }
        #expect(held)
        let second = try env.tool(["--lock-timeout", "0"])
        #expect(second.status == 75)
        #expect(second.stderr.contains("PID \(first)"), "message: \(second.stderr)")
        usleep(1_500_000)
        kill(first, SIGTERM)
        var status: Int32 = 0
        while waitpid(first, &status, 0) < 0 && errno == EINTR {}
        #expect((status >> 8) & 0xff == 1, "exit status \(status)")
        #expect(try env.isActive("maas-regiond"))
        #expect(leftovers().isEmpty, "leftovers after SIGTERM: \(leftovers())")
    }

    @Test("--snapshot none keeps MAAS stopped for the whole run, like the manual procedure")
    func noSnapshot() throws {
        let r = try env.tool(["--snapshot", "none", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] ?? [:]
        #expect(json["snapshot_method"] as? String == "none")
        let x = try extract(try #require(json["archive"] as? String))
        let fileCounter = Int(try String(contentsOfFile: x + "/var/lib/maas/counter", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(fileCounter == (try dumpCounter(x)))
        let steps = (json["window"] as? [[String: Any]] ?? []).compactMap { $0["step"] as? String }
        #expect(steps.last == "start_services")
        #expect(try env.isActive("maas-regiond"))
    }

    @Test("a bad config or an unreachable database fails before anything stops")
    func preflightFailures() throws {
        let calls = env.dir + "/svc/calls.log"
        func stops() -> Int {
            ((try? String(contentsOfFile: calls, encoding: .utf8)) ?? "").split(separator: "\n").filter { $0.contains(" stop ") }.count
        }
        let before = stops(), archivesBefore = env.everythingInBackups()

        let bad = env.dir + "/bad.yaml"
        try "snapshot: sometimes\n".write(toFile: bad, atomically: true, encoding: .utf8)
        var r = try env.tool([], config: bad)
        #expect(r.status == 78)
        #expect(r.stderr.contains("snapshot") && r.stderr.contains("auto, btrfs, lvm, none"), "\(r.stderr)")

        try "colour: blue\n".write(toFile: bad, atomically: true, encoding: .utf8)
        r = try env.tool([], config: bad)
        #expect(r.status == 78)
        #expect(r.stderr.contains("unknown key 'colour'"))

        let base = try String(contentsOfFile: env.config, encoding: .utf8)
        try base.replacingOccurrences(of: "host: \(env.dir)/pgsock", with: "host: \(env.dir)/no-such-socket")
            .write(toFile: bad, atomically: true, encoding: .utf8)
        r = try env.tool([], config: bad)
        #expect(r.status == 69, "\(r.stderr)")
        #expect(r.stderr.contains("cannot connect"))

        r = try env.tool(["--dry-run"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("maas-regiond"))

        #expect(stops() == before, "something was stopped")
        #expect(env.everythingInBackups() == archivesBefore, "something was created")
        #expect(try env.isActive("maas-regiond"))
    }
}
