import Foundation
import Testing
import LibArchive
import MaasBackupCore
#if canImport(Glibc)
import Glibc
#endif

/// How restore swaps a backed-up folder for the archive's copy (TreeSwap): the plan, and the
/// rename-mode moves and their undo, on a temporary folder (the `contents` mode needs a mount point
/// and is left to the integration tests).
@Suite("TreeSwap on a temporary folder")
struct TreeSwapTests {
    let root: String
    let config: Config
    let fm = FileManager.default
    static let stamp = "20260102T030405Z"

    init() throws {
        root = try UnitFixture.tempDir("treeswap")
        var c = Config()
        c.root = root
        config = c
        try fm.createDirectory(atPath: root + "/var/lib", withIntermediateDirectories: true)
    }

    var live: String { root + "/var/lib/maas" }

    func write(_ rel: String, _ text: String) throws {
        let p = live + "/" + rel
        try fm.createDirectory(atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: p))
    }

    func read(_ path: String) -> String? { fm.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) } }

    /// Every file below `dir` (relative path -> content), folders left out.
    func tree(_ dir: String) -> [String: String] {
        var out: [String: String] = [:]
        guard let e = fm.enumerator(atPath: dir) else { return out }
        while let rel = e.nextObject() as? String {
            var isDir: ObjCBool = false
            if fm.fileExists(atPath: dir + "/" + rel, isDirectory: &isDir), !isDir.boolValue { out[rel] = read(dir + "/" + rel) }
        }
        return out
    }

    func manifest(exclude: [String] = ["/var/lib/maas/boot-resources"], files: [FileRecord] = []) -> Manifest {
        UnitFixture.manifest(createdAt: "2026-01-02T03:04:05Z", exclude: exclude, files: files)
    }

    func cleanup() { try? fm.removeItem(atPath: root) }

    // MARK: - Plan

    @Test("a folder that is not there: create, nothing to move aside; the bytes are the files below the path only")
    func planCreate() throws {
        defer { cleanup() }
        let files = [UnitFixture.record("var/lib/maas", .directory), UnitFixture.record("var/lib/maas/a", size: 10),
                     UnitFixture.record("var/lib/maas/b/c", size: 5), UnitFixture.record("var/lib/maas-other/x", size: 100),
                     UnitFixture.record("etc/maas/y", size: 7), UnitFixture.record("var/lib/maas/link", .symlink, size: 99)]
        let s = try TreeSwap.plan(path: "/var/lib/maas", config: config, manifest: manifest(files: files), stamp: Self.stamp)
        #expect(s.mode == .create && s.aside.isEmpty && s.keep.isEmpty)
        #expect(s.live == live && s.member == "var/lib/maas")
        #expect(s.restoreBytes == 15)
    }

    @Test("a plain folder: renamed aside to <path>.pre-restore-<time>, excluded folders below it carried over")
    func planRename() throws {
        defer { cleanup() }
        try write("a", "old a")
        let m = manifest(exclude: ["/var/lib/maas/boot-resources", "/var/lib/maas/cache/big", "/etc/maas/other", "/var/lib/maas-x/y"])
        let s = try TreeSwap.plan(path: "/var/lib/maas", config: config, manifest: m, stamp: Self.stamp)
        #expect(s.mode == .rename)
        #expect(s.aside == live + ".pre-restore-" + Self.stamp)
        #expect(s.keep == ["boot-resources", "cache/big"], "only excludes below this path, relative to it")
        #expect(s.leftInPlace.isEmpty && !s.asideDone)
    }

    @Test("an aside name already taken gets -1, -2: an earlier restore's copy is never overwritten")
    func planUniqueAside() throws {
        defer { cleanup() }
        try write("a", "x")
        try fm.createDirectory(atPath: live + ".pre-restore-" + Self.stamp, withIntermediateDirectories: false)
        try Data().write(to: URL(fileURLWithPath: live + ".pre-restore-" + Self.stamp + "-1"))
        let s = try TreeSwap.plan(path: "/var/lib/maas", config: config, manifest: manifest(), stamp: Self.stamp)
        #expect(s.aside == live + ".pre-restore-" + Self.stamp + "-2")
    }

    @Test("the tool's own snapshot folder inside the path is carried over too")
    func planKeepsSnapshotFolder() throws {
        defer { cleanup() }
        try fm.createDirectory(atPath: live + "/" + TreeSwap.snapshotFolder, withIntermediateDirectories: true)
        let s = try TreeSwap.plan(path: "/var/lib/maas", config: config, manifest: manifest(), stamp: Self.stamp)
        #expect(s.keep.contains(TreeSwap.snapshotFolder))
        #expect(TreeSwap.snapshotFolder == ".maas-snapshot-backup")
    }

    @Test("a file or a symlink where the folder should be: refused (exit 69), nothing planned")
    func planRefusesNonFolders() throws {
        defer { cleanup() }
        try Data("f".utf8).write(to: URL(fileURLWithPath: live))
        let e = #expect(throws: BackupError.self) {
            try TreeSwap.plan(path: "/var/lib/maas", config: config, manifest: manifest(), stamp: Self.stamp)
        }
        #expect(e?.code == .unavailable)
        try fm.removeItem(atPath: live)
        try fm.createDirectory(atPath: root + "/elsewhere", withIntermediateDirectories: true)
        try fm.createSymbolicLink(atPath: live, withDestinationPath: root + "/elsewhere")
        #expect(throws: BackupError.self) {
            try TreeSwap.plan(path: "/var/lib/maas", config: config, manifest: manifest(), stamp: Self.stamp)
        }
    }

    @Test("free space: a restore far larger than the filesystem is refused before anything moves")
    func checkSpace() throws {
        defer { cleanup() }
        var s = try TreeSwap.plan(path: "/var/lib/maas", config: config, manifest: manifest(), stamp: Self.stamp)
        s.restoreBytes = 0
        try TreeSwap.checkSpace([s])
        s.restoreBytes = 1 << 60
        let e = #expect(throws: BackupError.self) { try TreeSwap.checkSpace([s]) }
        #expect(e?.code == .unavailable && (e?.description.contains("free") ?? false))
    }

    @Test("free space: the staged copies of two folders on one filesystem are counted together")
    func checkSpaceAddsUpOneFilesystem() throws {
        defer { cleanup() }
        try fm.createDirectory(atPath: root + "/etc/maas", withIntermediateDirectories: true)
        var lib = try TreeSwap.plan(path: "/var/lib/maas", config: config, manifest: manifest(), stamp: Self.stamp)
        var etc = try TreeSwap.plan(path: "/etc/maas", config: config, manifest: manifest(), stamp: Self.stamp)
        let free = try #require(FileSystem.freeBytes(root))
        // Each alone fits (with the margin); both together do not.
        lib.restoreBytes = free / 10 * 6
        etc.restoreBytes = free / 10 * 6
        try TreeSwap.checkSpace([lib])
        try TreeSwap.checkSpace([etc])
        let e = #expect(throws: BackupError.self) { try TreeSwap.checkSpace([lib, etc]) }
        #expect(e?.code == .unavailable, "\(String(describing: e))")
        #expect(e?.message.contains(lib.live) == true && e?.message.contains(etc.live) == true, "\(String(describing: e))")
        #expect(e?.message.contains("nothing was changed") == true)
    }

    // MARK: - Do and undo (rename)

    /// What the extraction does: the archive's copy, without boot-resources, into the staging folder.
    func stage(_ s: inout TreeSwap, _ files: [String: String], records: inout [TreeSwap]) throws {
        var recs: [TreeSwap] = []
        let staging = try s.beginStaging { recs.append($0) }
        records += recs
        #expect(recs.last?.stageStarted == true, "recorded before the extraction")
        #expect(staging == s.staging && !fm.fileExists(atPath: staging))
        try fm.createDirectory(atPath: staging, withIntermediateDirectories: false)
        for (rel, text) in files {
            try fm.createDirectory(atPath: ((staging + "/" + rel) as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data(text.utf8).write(to: URL(fileURLWithPath: staging + "/" + rel))
        }
    }

    @Test("rename: staged beside the live folder, aside, staged tree renamed in, excluded folders carried over; undo puts the previous tree back exactly")
    func renameAndUndo() throws {
        defer { cleanup() }
        try write("a", "old a")
        try write("sub/b", "old b")
        try write("boot-resources/current/squashfs", "image")
        let before = tree(live)
        var records: [TreeSwap] = []
        var s = try TreeSwap.plan(path: "/var/lib/maas", config: config, manifest: manifest(), stamp: Self.stamp)
        #expect(s.staging == live + ".restoring-" + Self.stamp, "beside the live folder: the same filesystem")
        try stage(&s, ["a": "new a", "new-file": "new"], records: &records)
        #expect(tree(live) == before, "staging changes nothing live")
        try s.moveAside { records.append($0) }
        #expect(records.last?.asideDone == true, "recorded before the move")
        #expect(!fm.fileExists(atPath: live) && tree(s.aside) == before)
        try s.moveStagedIn(record: { records.append($0) }, log: { Issue.record("no warning expected: \($1)") })
        #expect(records.last?.stagedIn == true)
        #expect(!fm.fileExists(atPath: s.staging ?? ""))
        var logs: [String] = []
        try s.carryKept(record: { records.append($0) }, log: { logs.append($1) })
        #expect(s.carried == ["boot-resources"] && logs.isEmpty)
        #expect(read(live + "/boot-resources/current/squashfs") == "image")
        #expect(!fm.fileExists(atPath: s.aside + "/boot-resources"))
        #expect(tree(live) == ["a": "new a", "new-file": "new", "boot-resources/current/squashfs": "image"])

        let aside = s.aside
        try s.undo { records.append($0) }
        #expect(tree(live) == before)
        #expect(!fm.fileExists(atPath: aside))
        #expect(!s.asideDone && s.carried.isEmpty)
        #expect(records.last?.asideDone == false)
    }

    @Test("undo again (recover after a crash) and undo of a swap that never started change nothing")
    func undoIsIdempotent() throws {
        defer { cleanup() }
        try write("a", "old")
        var s = try TreeSwap.plan(path: "/var/lib/maas", config: config, manifest: manifest(), stamp: Self.stamp)
        var fresh = s
        try fresh.undo { _ in Issue.record("nothing to record before the first move") }
        #expect(tree(live) == ["a": "old"])

        try s.moveAside { _ in }
        var crashed = s          // the journal's copy, as recover reads it
        try s.undo { _ in }
        try crashed.undo { _ in }
        #expect(tree(live) == ["a": "old"])
    }

    @Test("a swap recorded before its rename happened (crash in between): undo leaves the live tree alone")
    func undoBeforeRename() throws {
        defer { cleanup() }
        try write("a", "old")
        var s = try TreeSwap.plan(path: "/var/lib/maas", config: config, manifest: manifest(), stamp: Self.stamp)
        s.asideDone = true       // recorded, then killed before rename(2)
        try s.undo { _ in }
        #expect(tree(live) == ["a": "old"], "what stands at the path is the previous tree, not a restored one")
    }

    @Test("an excluded folder the archive brought too: the archive's stays, the previous one is left aside with a warning")
    func carryKeptConflict() throws {
        defer { cleanup() }
        try write("boot-resources/x", "previous")
        var s = try TreeSwap.plan(path: "/var/lib/maas", config: config, manifest: manifest(), stamp: Self.stamp)
        try s.moveAside { _ in }
        try write("boot-resources/x", "from the archive")
        var logs: [String] = []
        try s.carryKept(record: { _ in }, log: { logs.append($1) })
        #expect(s.carried.isEmpty && logs.count == 1 && logs[0].hasPrefix("warning:"))
        #expect(read(live + "/boot-resources/x") == "from the archive")
        #expect(read(s.aside + "/boot-resources/x") == "previous")
    }

    @Test("create: undo removes what was restored where nothing was")
    func createAndUndo() throws {
        defer { cleanup() }
        var records: [TreeSwap] = []
        var s = try TreeSwap.plan(path: "/var/lib/maas", config: config, manifest: manifest(), stamp: Self.stamp)
        try stage(&s, ["a": "restored"], records: &records)
        try s.moveAside { _ in }
        try s.moveStagedIn(record: { _ in }, log: { _, _ in })
        try s.carryKept(record: { _ in }, log: { _, _ in })
        #expect(tree(live) == ["a": "restored"])
        try s.undo { _ in }
        #expect(!fm.fileExists(atPath: live))
    }

    @Test("a failure before the stop (staged, nothing moved): undo removes the staging folder only")
    func undoStagedOnly() throws {
        defer { cleanup() }
        try write("a", "live a")
        var records: [TreeSwap] = []
        var s = try TreeSwap.plan(path: "/var/lib/maas", config: config, manifest: manifest(), stamp: Self.stamp)
        try stage(&s, ["a": "archive a", "deep/er/b": "b"], records: &records)
        let staging = try #require(s.staging)
        var crashed = s
        try s.undo { records.append($0) }
        #expect(!fm.fileExists(atPath: staging))
        #expect(tree(live) == ["a": "live a"])
        #expect(records.last?.stageStarted == false)
        try crashed.undo { _ in }     // recover reading the journal after the kill: nothing left to do
        #expect(tree(live) == ["a": "live a"])
    }

    @Test("killed after recording the staged tree's rename, before it (or after it): undo puts the previous tree back either way")
    func undoAroundStagedRename() throws {
        defer { cleanup() }
        for renamed in [false, true] {
            try? fm.removeItem(atPath: live)
            try write("a", "live a")
            var records: [TreeSwap] = []
            var s = try TreeSwap.plan(path: "/var/lib/maas", config: config, manifest: manifest(), stamp: Self.stamp + (renamed ? "b" : "a"))
            try stage(&s, ["a": "archive a"], records: &records)
            try s.moveAside { _ in }
            if renamed {
                try s.moveStagedIn(record: { _ in }, log: { _, _ in })
            } else {
                s.stagedIn = true   // recorded, then killed before rename(2)
            }
            try s.undo { _ in }
            #expect(tree(live) == ["a": "live a"], "renamed: \(renamed)")
            #expect(!fm.fileExists(atPath: s.staging ?? "") && !fm.fileExists(atPath: s.aside), "renamed: \(renamed)")
        }
    }

    @Test("contents (a mount point): staged entries move in one by one, an empty lost+found of the archive gives way to the live one, undo puts everything back")
    func contentsStagedIn() throws {
        defer { cleanup() }
        try write("a", "live a")
        try fm.createDirectory(atPath: live + "/lost+found", withIntermediateDirectories: false)
        try write("lost+found/#123", "fsck found this")
        let before = tree(live)  // (before the non-UTF-8 file below)
        // What plan() decides for a mount point, on a plain folder (the unit tests have no mount).
        var s = try TreeSwap.plan(path: "/var/lib/maas", config: config, manifest: manifest(), stamp: Self.stamp)
        s.mode = .contents
        s.aside = live + "/" + TreeSwap.snapshotFolder + "/pre-restore-" + Self.stamp
        s.staging = live + "/" + TreeSwap.snapshotFolder + "/restoring-" + Self.stamp
        s.leftInPlace = ["lost+found"]
        s.keep = []
        var records: [TreeSwap] = []
        // A name that is not UTF-8, live and in the archive: moved by its bytes both ways.
        let latin1 = Array("caf".utf8) + [0xE9]
        func writeRaw(_ dir: String, _ text: String) {
            let fd = RawNames.withPath(dir, latin1) { open($0, O_WRONLY | O_CREAT | O_TRUNC, 0o644) }
            _ = text.utf8CString.withUnsafeBufferPointer { Glibc.write(fd, $0.baseAddress, $0.count - 1) }
            close(fd)
        }
        func readRaw(_ dir: String) -> String? {
            let fd = RawNames.withPath(dir, latin1) { open($0, O_RDONLY) }
            guard fd >= 0 else { return nil }
            defer { close(fd) }
            var buf = [UInt8](repeating: 0, count: 64)
            let n = Glibc.read(fd, &buf, 64)
            return String(decoding: buf.prefix(max(n, 0)), as: UTF8.self)
        }
        writeRaw(live, "live latin-1")
        try stage(&s, ["a": "archive a", "sub/b": "archive b"], records: &records)
        writeRaw(s.staging ?? "", "archive latin-1")
        #expect(records.first?.madeSnapshotFolder == true, "the snapshot folder is made (and recorded) before staging into it")
        try fm.createDirectory(atPath: (s.staging ?? "") + "/lost+found", withIntermediateDirectories: false)
        chmod(s.staging ?? "", 0o750)
        try s.moveAside { records.append($0) }
        var logs: [String] = []
        try s.moveStagedIn(record: { records.append($0) }, log: { logs.append($1) })
        #expect(logs.isEmpty, "\(logs)")
        #expect(s.stagedMoved?.count == 3 && s.stagedMoved?.contains("a") == true && s.stagedMoved?.contains("sub") == true, "\(s.stagedMoved ?? [])")
        #expect(readRaw(live) == "archive latin-1", "the archive's file with a name that is not UTF-8 is in place")
        #expect(readRaw(s.aside) == "live latin-1")
        #expect(tree(live).filter { !$0.key.hasPrefix(TreeSwap.snapshotFolder) && !$0.key.hasPrefix("caf") } == ["a": "archive a", "sub/b": "archive b", "lost+found/#123": "fsck found this"])
        #expect(!fm.fileExists(atPath: s.staging ?? ""), "the staging folder is gone once emptied")
        var st = stat()
        lstat(live, &st)
        #expect(st.st_mode & 0o7777 == 0o750, "the live folder takes the staged folder's mode")
        // The journal's copy (JSON) names the non-UTF-8 entry so that undo finds it.
        s = try JSONDecoder().decode(TreeSwap.self, from: try JSONEncoder().encode(s))
        try s.undo { records.append($0) }
        #expect(readRaw(live) == "live latin-1", "undo put the live file with a name that is not UTF-8 back")
        #expect(tree(live).filter { !$0.key.hasPrefix("caf") } == before.filter { !$0.key.hasPrefix("caf") })
        #expect(!fm.fileExists(atPath: live + "/" + TreeSwap.snapshotFolder), "the snapshot folder made for the restore is removed by undo")
    }

    @Test("create: something at the path that the restore did not put there is left alone by undo")
    func createUndoLeavesOthers() throws {
        defer { cleanup() }
        var records: [TreeSwap] = []
        var s = try TreeSwap.plan(path: "/var/lib/maas", config: config, manifest: manifest(), stamp: Self.stamp)
        try stage(&s, ["a": "restored"], records: &records)
        try s.moveAside { _ in }
        try write("x", "not ours")    // before the staged tree was renamed in
        try s.undo { _ in }
        #expect(tree(live) == ["x": "not ours"])
        #expect(!fm.fileExists(atPath: s.staging ?? ""))
    }

    @Test("the recorded state survives the journal (JSON) with every field")
    func codable() throws {
        defer { cleanup() }
        try write("a", "x")
        var s = try TreeSwap.plan(path: "/var/lib/maas", config: config, manifest: manifest(), stamp: Self.stamp)
        try s.moveAside { _ in }
        let back = try JSONDecoder().decode(TreeSwap.self, from: try JSONEncoder().encode(s))
        #expect(back.mode == s.mode && back.aside == s.aside && back.keep == s.keep && back.asideDone && back.live == s.live)
        #expect(back.originalMode == s.originalMode && back.originalMode != 0)
        #expect(back.staging == s.staging && back.staging != nil)
        // A journal written before staging existed (no staging fields) still reads.
        var old = try #require(try JSONSerialization.jsonObject(with: try JSONEncoder().encode(s)) as? [String: Any])
        for k in ["staging", "stageStarted", "stagedIn", "stagedMoved"] { old.removeValue(forKey: k) }
        let older = try JSONDecoder().decode(TreeSwap.self, from: try JSONSerialization.data(withJSONObject: old))
        #expect(older.staging == nil && older.asideDone)
    }
}
