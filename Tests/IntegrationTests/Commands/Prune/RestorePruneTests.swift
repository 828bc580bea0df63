import Foundation
import MaasBackupCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `prune` and `list` on a destination of made-up archives (no database needed): retention keeps the
/// newest, the newest verified and the newest pre-upgrade backup, and removes whole backups.
@Suite("prune and list", .serialized, .enabled(if: FileManager.default.isExecutableFile(atPath: TestEnv.binary), "the maas-snapshot-backup binary is not built"))
struct RestorePruneTests {
    let dir: String
    var dest: String { dir + "/backups" }
    var config: String { dir + "/config.yaml" }

    init() throws {
        dir = "/tmp/msb-prune-\(getpid())-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: dir + "/backups", withIntermediateDirectories: true)
        try """
            destination: \(dir)/backups
            lock_file: \(dir)/lock
            state_dir: \(dir)/state
            retention:
              keep: 1
              keep_pre_upgrade: 1
              max_age_days: 30

            """.write(toFile: dir + "/config.yaml", atomically: true, encoding: .utf8)
    }

    /// A made-up backup `daysOld` days old: the archive, its sidecar, a .debs folder, maybe a stamp.
    @discardableResult
    func make(_ label: String, daysOld: Double, reason: String, verified: Bool = false, sidecar: Bool = true) throws -> String {
        let date = Date().addingTimeInterval(-daysOld * 86400)
        let name = ArchiveName.make(host: "h-\(label)", date: date)
        let path = dest + "/" + name
        try Data("not really an archive \(label)\n".utf8).write(to: URL(fileURLWithPath: path))
        try FileManager.default.createDirectory(atPath: String(path.dropLast(ArchiveName.suffix.count)) + ".debs", withIntermediateDirectories: true)
        try Data("deb".utf8).write(to: URL(fileURLWithPath: String(path.dropLast(ArchiveName.suffix.count)) + ".debs/maas_1.deb"))
        if sidecar {
            let json = """
                {"format_version": 1, "tool": "maas-snapshot-backup", "tool_version": "0.1.0", "host": "h-\(label)",
                 "created_at": "\(ArchiveName.iso8601(date))", "reason": "\(reason)", "snapshot_method": "btrfs", "root": "/",
                 "paths": [], "exclude": [], "maas_packages": {}, "maas_version": "1:3.4.2-1",
                 "database": {"server_version": "15.18", "scope": "maas", "databases": ["maasdb"], "maas_database": "maasdb",
                              "snapshot_i_ds": {}, "schema_head": {}, "row_counts": {}},
                 "window": {"services_stopped": [], "downtime_ms": 1, "steps": []}, "files": [],
                 "dump": {"path": "dump.sql", "type": "file", "size": 0, "mode": "0600", "uid": 0, "gid": 0, "mtime": 0}}
                """
            try Data(json.utf8).write(to: URL(fileURLWithPath: path + ".manifest.json"))
            _ = try Manifest.decode(Array(json.utf8))
        }
        if verified {
            var st = stat()
            stat(path, &st)
            let stamp = """
                {"verified_at": "\(ArchiveName.iso8601(Date()))", "deep": false, "archive_size": \(st.st_size),
                 "archive_mtime": \(st.st_mtim.tv_sec), "sha256": "x", "tool_version": "0.1.0"}
                """
            try Data(stamp.utf8).write(to: URL(fileURLWithPath: path + ".verified"))
        }
        return path
    }

    func run(_ args: [String]) throws -> TestEnv.Result {
        try RT.spawn([TestEnv.binary] + args + ["--config", config])
    }

    @Test("prune keeps the newest, the newest verified and the newest pre-upgrade backup, and removes whole backups")
    func prune() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = try make("a", daysOld: 1, reason: "manual")
        let b = try make("b", daysOld: 2, reason: "manual")
        let c = try make("c", daysOld: 3, reason: "pre-upgrade: maas 3.4 -> 3.5")
        let d = try make("d", daysOld: 4, reason: "timer")
        let e = try make("e", daysOld: 5, reason: "pre-upgrade: maas 3.3 -> 3.4")
        let f = try make("f", daysOld: 40, reason: "manual", verified: true)
        let g = try make("g", daysOld: 50, reason: "pre-upgrade: old")
        let h = try make("h", daysOld: 60, reason: "?", sidecar: false)
        try Data("partial".utf8).write(to: URL(fileURLWithPath: dest + "/" + ArchiveName.make(host: "p", date: Date()) + ".partial"))
        try Data("other".utf8).write(to: URL(fileURLWithPath: dest + "/notes.txt"))

        // list: newest first, the .partial and other files left out, the verified one marked.
        let l = try run(["list", "--json"])
        #expect(l.status == 0, "\(l.stderr)")
        let listed = ((RT.json(l)["backups"] as? [[String: Any]]) ?? []).compactMap { $0["archive"] as? String }
        #expect(listed == [a, b, c, d, e, f, g, h])
        let fEntry = ((RT.json(l)["backups"] as? [[String: Any]]) ?? []).first { $0["archive"] as? String == f }
        #expect(fEntry?["verified"] as? Bool == true)

        let all = Set([a, b, c, d, e, f, g, h])
        let keep: Set = [a, c, f, h], remove: Set = [b, d, e, g]

        let dry = try run(["prune", "--dry-run", "--json"])
        #expect(dry.status == 0, "\(dry.stderr)")
        let dj = RT.json(dry)
        #expect(Set(((dj["removed"] as? [[String: Any]]) ?? []).compactMap { $0["archive"] as? String }) == remove)
        #expect(Set(((dj["kept"] as? [[String: Any]]) ?? []).compactMap { $0["archive"] as? String }) == keep)
        for p in all { #expect(FileManager.default.fileExists(atPath: p), "--dry-run removed \(p)") }

        let r = try run(["prune", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let kept = ((RT.json(r)["kept"] as? [[String: Any]]) ?? [])
        #expect(kept.first { $0["archive"] as? String == f }?["why"] as? String == "newest verified backup")
        #expect(kept.first { $0["archive"] as? String == c }?["why"] as? String == "newest pre-upgrade backup")
        for p in keep {
            #expect(FileManager.default.fileExists(atPath: p), "\(p) should be kept")
            #expect(FileManager.default.fileExists(atPath: String(p.dropLast(ArchiveName.suffix.count)) + ".debs"))
        }
        for p in remove {
            #expect(!FileManager.default.fileExists(atPath: p), "\(p) should be removed")
            #expect(!FileManager.default.fileExists(atPath: p + ".manifest.json"))
            #expect(!FileManager.default.fileExists(atPath: p + ".verified"))
            #expect(!FileManager.default.fileExists(atPath: String(p.dropLast(ArchiveName.suffix.count)) + ".debs"))
        }
        #expect(FileManager.default.fileExists(atPath: dest + "/notes.txt"))
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: dest)) ?? []).contains { $0.hasSuffix(".partial") })

        // Again: nothing more to remove.
        let again = try run(["prune"])
        #expect(again.status == 0 && again.stdout.contains("0 backup(s) removed"), "\(again.stdout)")
    }
}
