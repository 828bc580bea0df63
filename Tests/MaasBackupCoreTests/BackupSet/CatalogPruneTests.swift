import Foundation
import Testing
import PathNames
import MaasBackupCore

/// Test helpers: a throwaway folder, and a manifest with just the fields the catalogue, retention
/// and TreeSwap read.
enum UnitFixture {
    static func tempDir(_ tag: String) throws -> String {
        let dir = NSTemporaryDirectory() + "msb-unit-\(tag)-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    static func record(_ path: String, _ kind: EntryKind = .file, size: Int64 = 0) -> FileRecord {
        FileRecord(path: path, type: kind, size: size, mode: kind == .directory ? "0755" : "0644", uid: 0, gid: 0,
                   user: "root", group: "root", mtime: 0, sha256: kind == .file ? String(repeating: "0", count: 64) : nil,
                   linkTarget: nil)
    }

    static func manifest(createdAt: String, reason: String = "manual", host: String = "h", exclude: [String] = [],
                         files: [FileRecord] = [], maasVersion: String? = "1:3.4.0-0ubuntu1") -> Manifest {
        Manifest(host: host, createdAt: createdAt, reason: reason, snapshotMethod: "copy", root: "/",
                 paths: [.init(path: "/etc/maas", method: .copy), .init(path: "/var/lib/maas", method: .copy)],
                 exclude: exclude, maasPackages: ["maas-region-controller": "1:3.4.0-0ubuntu1"], maasVersion: maasVersion,
                 database: .init(serverVersion: "15.14", scope: "maas", databases: ["maasdb"], maasDatabase: "maasdb",
                                 snapshotIDs: [:], schemaHead: SchemaHead(django: "maasserver.0304"), rowCounts: [:]),
                 window: .init(servicesStopped: [], downtimeMs: 0, steps: []),
                 files: files, dump: record("dump.sql", size: 1))
    }
}

/// The catalogue of a destination and the retention rule (README "Retention"), on archives made in
/// a temporary folder with the naming rule and the sidecars the tool writes.
@Suite("catalogue and retention")
struct CatalogPruneTests {
    static let day: TimeInterval = 86400
    static let now = Date(timeIntervalSince1970: 1_800_000_000)

    /// Writes an archive (dummy bytes), its sidecar manifest unless `sidecar` is false, and a
    /// verified stamp when asked. Returns the archive's path.
    @discardableResult
    static func make(_ dir: String, ageDays: Double, reason: String = "manual", sidecar: Bool = true, verified: Bool = false,
                     size: Int = 100, debs: Bool = false) throws -> String {
        let date = now.addingTimeInterval(-ageDays * day)
        let path = dir + "/" + ArchiveName.make(host: "h", date: date)
        try Data(repeating: 0x1F, count: size).write(to: URL(fileURLWithPath: path))
        if sidecar {
            let m = UnitFixture.manifest(createdAt: ArchiveName.iso8601(date), reason: reason)
            try Data(try m.encoded()).write(to: URL(fileURLWithPath: path + ".manifest.json"))
        }
        if verified { #expect(VerifiedStamp.write(archive: path, sha256: "ab", deep: false) != nil) }
        if debs {
            let folder = Catalog.debsFolder(path)
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try Data("deb".utf8).write(to: URL(fileURLWithPath: folder + "/maas-common_1%3a3.4.0_all.deb"))
        }
        return path
    }

    static func retention(keep: Int = 7, keepPreUpgrade: Int = 3, maxAgeDays: Int = 0) -> Config.Retention {
        var r = Config.Retention()
        r.keep = keep
        r.keepPreUpgrade = keepPreUpgrade
        r.maxAgeDays = maxAgeDays
        return r
    }

    static func names(_ xs: [(BackupEntry, String)]) -> [String] { xs.map { ($0.0.archive as NSString).lastPathComponent } }
    static func base(_ paths: [String]) -> [String] { paths.map { ($0 as NSString).lastPathComponent } }

    // MARK: - The catalogue

    @Test("entries: newest first, details from the sidecar, nothing that is not a complete archive file")
    func entries() throws {
        let dir = try UnitFixture.tempDir("catalog")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let old = try Self.make(dir, ageDays: 3, reason: "pre-upgrade maas-region-controller 3.4 -> 3.5", verified: true)
        let new = try Self.make(dir, ageDays: 1, size: 321)
        let bare = try Self.make(dir, ageDays: 2, sidecar: false)
        // Not backups: a partial archive, a folder and a symlink named like archives, a stray file.
        try Data("x".utf8).write(to: URL(fileURLWithPath: dir + "/maas-backup-h-20300101T000000Z.tar.gz.partial"))
        try FileManager.default.createDirectory(atPath: dir + "/maas-backup-h-20300102T000000Z.tar.gz", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: dir + "/maas-backup-h-20300103T000000Z.tar.gz", withDestinationPath: new)
        try Data("x".utf8).write(to: URL(fileURLWithPath: dir + "/notes.txt"))

        let es = Catalog.entries(destination: dir)
        #expect(es.map(\.archive) == [new, bare, old])
        let e0 = es[0], e1 = es[1], e2 = es[2]
        #expect(e0.hasManifest && e0.reason == "manual" && e0.sizeBytes == 321 && !e0.verified && e0.host == "h")
        #expect(e0.maasVersion == "1:3.4.0-0ubuntu1" && e0.maasPackages?["maas-region-controller"] != nil)
        #expect(!e1.hasManifest && e1.reason == "?", "no sidecar: known by its name only")
        #expect(e1.createdAt == ArchiveName.iso8601(Self.now.addingTimeInterval(-2 * Self.day)), "the time comes from the name")
        #expect(e2.isPreUpgrade && e2.verified && !e2.deepVerified && e2.verifiedAt != nil)
        #expect(Catalog.entries(destination: dir + "/missing").isEmpty)
    }

    @Test("a stamp that no longer describes the archive (rewritten since) does not count as verified")
    func staleStamp() throws {
        let dir = try UnitFixture.tempDir("stamp")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = try Self.make(dir, ageDays: 1, verified: true)
        #expect(Catalog.entries(destination: dir).first?.verified == true)
        try Data(repeating: 0, count: 101).write(to: URL(fileURLWithPath: a))
        #expect(Catalog.entries(destination: dir).first?.verified == false)
    }

    @Test("an unreadable sidecar: the entry is still listed, as one without a manifest")
    func brokenSidecar() throws {
        let dir = try UnitFixture.tempDir("broken")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = try Self.make(dir, ageDays: 1)
        try Data("{not json".utf8).write(to: URL(fileURLWithPath: a + ".manifest.json"))
        let e = try #require(Catalog.entries(destination: dir).first)
        #expect(!e.hasManifest && e.reason == "?")
    }

    // MARK: - Retention (plan only)

    @Test("keep N: the newest N ordinary backups stay, the rest go, oldest first in the list")
    func keepN() throws {
        let dir = try UnitFixture.tempDir("keep")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let paths = try (1...5).map { try Self.make(dir, ageDays: Double($0)) }  // paths[0] newest
        let (keep, remove) = Retention.plan(Catalog.entries(destination: dir), retention: Self.retention(keep: 2), now: Self.now)
        #expect(Self.names(keep) == Self.base(Array(paths[0...1])))
        #expect(Self.names(remove) == Self.base(Array(paths[2...4])))
        #expect(remove.allSatisfy { $0.1 == "beyond keep (2)" })
        #expect(keep[0].1 == "newest backup" && keep[1].1 == "2 of keep 2")
    }

    @Test("keep 0 still keeps the newest backup")
    func keepZero() throws {
        let dir = try UnitFixture.tempDir("keep0")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let paths = try (1...3).map { try Self.make(dir, ageDays: Double($0)) }
        let (keep, remove) = Retention.plan(Catalog.entries(destination: dir), retention: Self.retention(keep: 0), now: Self.now)
        #expect(Self.names(keep) == Self.base([paths[0]]) && remove.count == 2)
    }

    @Test("pre-upgrade backups are counted apart (keep_pre_upgrade), and do not use up keep")
    func preUpgradeCountedApart() throws {
        let dir = try UnitFixture.tempDir("pre")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let ordinary = try [1.0, 3, 5].map { try Self.make(dir, ageDays: $0) }
        let pre = try [2.0, 4, 6, 8].map { try Self.make(dir, ageDays: $0, reason: "pre-upgrade maas 3.4 -> 3.5") }
        let (keep, remove) = Retention.plan(Catalog.entries(destination: dir), retention: Self.retention(keep: 2, keepPreUpgrade: 2),
                                        now: Self.now)
        #expect(Set(Self.names(keep)) == Set(Self.base([ordinary[0], ordinary[1], pre[0], pre[1]])))
        #expect(Set(Self.names(remove)) == Set(Self.base([ordinary[2], pre[2], pre[3]])))
        #expect(remove.contains { $0.1 == "beyond keep_pre_upgrade (2)" })
    }

    @Test("keep_pre_upgrade 0 and too old: the newest pre-upgrade backup stays all the same")
    func newestPreUpgradeProtected() throws {
        let dir = try UnitFixture.tempDir("pre0")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.make(dir, ageDays: 1)
        let pre = try [50.0, 60].map { try Self.make(dir, ageDays: $0, reason: "pre-upgrade x") }
        let (keep, remove) = Retention.plan(Catalog.entries(destination: dir),
                                        retention: Self.retention(keep: 5, keepPreUpgrade: 0, maxAgeDays: 30), now: Self.now)
        #expect(Self.names(keep).contains(Self.base([pre[0]])[0]))
        #expect(Self.names(remove) == Self.base([pre[1]]))
        #expect(keep.contains { $0.1 == "newest pre-upgrade backup" })
    }

    @Test("max_age_days: older backups go even within keep; 0 means no age limit; the newest always stays")
    func maxAge() throws {
        let dir = try UnitFixture.tempDir("age")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let paths = try [40.0, 45, 10.0 * 365].map { try Self.make(dir, ageDays: $0) }
        let entries = Catalog.entries(destination: dir)
        let (keep, remove) = Retention.plan(entries, retention: Self.retention(keep: 10, maxAgeDays: 30), now: Self.now)
        #expect(Self.names(keep) == Self.base([paths[0]]), "the newest stays although it is 40 days old")
        #expect(Self.names(remove) == Self.base([paths[1], paths[2]]))
        #expect(remove.allSatisfy { $0.1 == "older than max_age_days (30)" })
        let none = Retention.plan(entries, retention: Self.retention(keep: 10, maxAgeDays: 0), now: Self.now)
        #expect(none.remove.isEmpty)
        // Just inside the limit stays.
        let edge = Retention.plan(entries, retention: Self.retention(keep: 10, maxAgeDays: 45), now: Self.now)
        #expect(Self.names(edge.remove) == Self.base([paths[2]]))
    }

    @Test("the newest verified backup is never removed, even beyond keep and too old")
    func newestVerifiedProtected() throws {
        let dir = try UnitFixture.tempDir("verified")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.make(dir, ageDays: 1)
        try Self.make(dir, ageDays: 2)
        let v = try Self.make(dir, ageDays: 100, verified: true)
        let olderVerified = try Self.make(dir, ageDays: 200, verified: true)
        let (keep, remove) = Retention.plan(Catalog.entries(destination: dir), retention: Self.retention(keep: 1, maxAgeDays: 30),
                                        now: Self.now)
        #expect(Self.names(keep).contains(Self.base([v])[0]))
        #expect(keep.contains { $0.1 == "newest verified backup" })
        #expect(Self.names(remove).contains(Self.base([olderVerified])[0]), "only the newest verified one is protected")
    }

    @Test("the newest backup that is also verified says both")
    func newestAndVerified() throws {
        let dir = try UnitFixture.tempDir("both")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.make(dir, ageDays: 1, verified: true)
        let (keep, _) = Retention.plan(Catalog.entries(destination: dir), retention: Self.retention(), now: Self.now)
        #expect(keep.first?.1 == "newest backup, newest verified")
    }

    @Test("archives without a sidecar are left alone and do not count towards keep")
    func noSidecarLeftAlone() throws {
        let dir = try UnitFixture.tempDir("bare")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = try Self.make(dir, ageDays: 1)
        let bare = try Self.make(dir, ageDays: 2, sidecar: false)
        let b = try Self.make(dir, ageDays: 3)
        let c = try Self.make(dir, ageDays: 400)
        let (keep, remove) = Retention.plan(Catalog.entries(destination: dir), retention: Self.retention(keep: 2, maxAgeDays: 30),
                                        now: Self.now)
        #expect(Set(Self.names(keep)) == Set(Self.base([a, bare, b])))
        #expect(Self.names(remove) == Self.base([c]))
        #expect(keep.contains { $0.1 == "no sidecar manifest: left alone" })
        // Even a very old one without a sidecar.
        let (_, remove2) = Retention.plan(Catalog.entries(destination: dir), retention: Self.retention(keep: 0, maxAgeDays: 1),
                                      now: Self.now.addingTimeInterval(1000 * Self.day))
        #expect(!Self.names(remove2).contains(Self.base([bare])[0]))
    }

    @Test("an empty destination plans nothing")
    func empty() {
        let (keep, remove) = Retention.plan([], retention: Self.retention(), now: Self.now)
        #expect(keep.isEmpty && remove.isEmpty)
    }

    // MARK: - prune itself

    @Test("prune removes the archive, its sidecar, its stamp and its .debs folder; --dry-run removes nothing; .partial files are never touched")
    func pruneRun() throws {
        let dir = try UnitFixture.tempDir("prune")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let newest = try Self.make(dir, ageDays: 0.01, verified: true)
        let old = try Self.make(dir, ageDays: 1, verified: true, size: 1000)       // a stamp, not the newest one
        let oldDebs = try Self.make(dir, ageDays: 2, size: 2000, debs: true)      // saved .debs beside it
        let partial = dir + "/" + ArchiveName.make(host: "h", date: Self.now.addingTimeInterval(-5 * Self.day)) + ".partial"
        try Data("x".utf8).write(to: URL(fileURLWithPath: partial))

        var config = Config()
        config.destination = dir
        config.lockFile = dir + "/lock"
        config.retention = Self.retention(keep: 1, maxAgeDays: 0)
        let before = Set(try FileManager.default.contentsOfDirectory(atPath: dir))
        let dry = try Prune.run(config: config, dryRun: true, lockHeld: true)
        #expect(dry.dryRun && dry.removed.count == 2 && dry.freedBytes == 3000)
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: dir)) == before, "a dry run changes nothing")

        let r = try Prune.run(config: config, dryRun: false, lockHeld: true)
        #expect(r.errors.isEmpty, "\(r.errors)")
        #expect(Set(r.removed.map(\.archive)) == [old, oldDebs] && r.freedBytes == 3000)
        #expect(r.kept.map(\.archive) == [newest])
        let fm = FileManager.default
        for a in [old, oldDebs] {
            for p in [a, a + ".manifest.json", VerifiedStamp.path(for: a), Catalog.debsFolder(a)] {
                #expect(!fm.fileExists(atPath: p), "\(p) is left")
            }
        }
        #expect(fm.fileExists(atPath: newest) && fm.fileExists(atPath: newest + ".manifest.json"))
        #expect(fm.fileExists(atPath: partial), "a .partial archive belongs to a run, not to retention")
    }
}
