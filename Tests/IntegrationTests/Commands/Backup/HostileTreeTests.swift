import Foundation
import MaasBackupCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Trees a local user can shape (the maas user owns /var/lib/maas): names that are not UTF-8,
/// trees deeper than PATH_MAX, folders swapped for symlinks and files for FIFOs while they are
/// read. The walk must archive them as bytes, never follow a swap and never block.
enum HostileTree {
    static func tempDir(_ name: String) throws -> String {
        let d = "/tmp/msb-walk-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    /// Creates a file named by raw bytes in `dir`.
    static func create(_ dir: String, _ name: [UInt8], _ content: String) throws {
        let dfd = open(dir, O_RDONLY | O_DIRECTORY)
        defer { close(dfd) }
        let fd = (name + [0]).withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { openat(dfd, $0.baseAddress!, O_WRONLY | O_CREAT | O_TRUNC, 0o644) }
        }
        guard fd >= 0 else { throw TestFailure("cannot create a file in \(dir): errno \(errno)") }
        _ = content.withCString { write(fd, $0, strlen($0)) }
        close(fd)
    }

    /// Makes `levels` nested folders named `segment` below `dir` (by descriptors: the path is
    /// longer than PATH_MAX) with a file `bottom` holding `content` at the end.
    static func deepTree(_ dir: String, levels: Int, segment: String, content: String) throws {
        var fd = open(dir, O_RDONLY | O_DIRECTORY)
        for _ in 0..<levels {
            guard mkdirat(fd, segment, 0o755) == 0 || errno == EEXIST else { throw TestFailure("mkdirat: errno \(errno)") }
            let next = openat(fd, segment, O_RDONLY | O_DIRECTORY)
            close(fd)
            fd = next
        }
        let f = openat(fd, "bottom", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        _ = content.withCString { write(f, $0, strlen($0)) }
        close(f)
        close(fd)
    }

    /// Raw names in the folder `path` (readdir).
    static func names(_ path: String) -> [[UInt8]] {
        guard let d = opendir(path) else { return [] }
        defer { closedir(d) }
        var out: [[UInt8]] = []
        while let e = readdir(d) {
            let n = withUnsafePointer(to: &e.pointee.d_name) { p in
                p.withMemoryRebound(to: UInt8.self, capacity: 256) { Array(UnsafeBufferPointer(start: $0, count: strlen(UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)))) }
            }
            if n != [0x2E] && n != [0x2E, 0x2E] { out.append(n) }
        }
        return out
    }

    static func sha256(_ s: String) -> String {
        let tmp = "/tmp/msb-sha-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try? s.write(toFile: tmp, atomically: false, encoding: .utf8)
        defer { unlink(tmp) }
        return RT.sha256(tmp)
    }
}

/// The tree walk on plain folders (no services, no database).
@Suite(.serialized, .enabled(if: geteuid() == 0, "needs root"))
struct TreeWalkTests {
    func build(_ source: String, checkInterrupted: (() throws -> Void)? = nil) throws -> [FileRecord] {
        let out = try HostileTree.tempDir("out")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let b = try ArchiveBuilder(path: out + "/a.tar.gz", level: 1, threads: 1)
        b.checkInterrupted = checkInterrupted
        let records = try b.addTree(source: source, member: "var/lib/maas", skip: { _ in false })
        try b.finish()
        return records
    }

    @Test("a name that is not UTF-8 and a tree deeper than PATH_MAX are archived (they failed every backup)")
    func nonUTF8AndDeep() throws {
        let src = try HostileTree.tempDir("names")
        defer { _ = try? TestEnv.sh(["rm", "-rf", src]) }
        try HostileTree.create(src, Array("caf".utf8) + [0xE9], "latin-1 name\n")
        let segment = String(repeating: "d", count: 60)
        try HostileTree.deepTree(src, levels: 80, segment: segment, content: "deep\n")  // 80 * 61 = 4880 bytes of path
        let records = try build(src)
        let caf = records.first { $0.path.hasPrefix("var/lib/maas/caf") }
        #expect(caf?.sha256 == HostileTree.sha256("latin-1 name\n"), "\(records.map(\.path).filter { $0.contains("caf") })")
        let deep = try #require(records.first { $0.path.hasSuffix("/bottom") })
        #expect(deep.path.utf8.count > Int(PATH_MAX))
        #expect(deep.sha256 == HostileTree.sha256("deep\n"))
    }

    @Test("a tree of 2100 one-letter levels (4200 bytes of path) is walked on the archive thread's stack")
    func manyLevels() throws {
        let src = try HostileTree.tempDir("levels")
        defer { _ = try? TestEnv.sh(["rm", "-rf", src]) }
        try HostileTree.deepTree(src, levels: 2100, segment: "l", content: "bottom\n")
        nonisolated(unsafe) var result: Result<[FileRecord], any Error>?
        let t = Thread { result = Result { try build(src) } }
        t.stackSize = 8 << 20  // as Blocking.run gives the archive step
        t.start()
        while result == nil { usleep(20_000) }
        let records = try #require(try result?.get())
        #expect(records.count == 2100 + 2)
        #expect(records.last?.sha256 == HostileTree.sha256("bottom\n"))
    }

    @Test("a folder swapped for a symlink while it is walked is not followed (root-only files are not archived)")
    func folderSwappedForSymlink() throws {
        let base = try HostileTree.tempDir("swap")
        defer { try? FileManager.default.removeItem(atPath: base) }
        let src = base + "/tree", secret = base + "/secret"
        try FileManager.default.createDirectory(atPath: src + "/a", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: secret, withIntermediateDirectories: true)
        try "mine\n".write(toFile: src + "/a/f1", atomically: false, encoding: .utf8)
        try "ROOT ONLY\n".write(toFile: secret + "/f1", atomically: false, encoding: .utf8)
        chmod(secret + "/f1", 0o600)
        // Entries are walked in order: the tree, a, a/f1. Right after a was listed, before a/f1 is
        // opened, the user swaps a for a symlink to a folder of root's.
        nonisolated(unsafe) var calls = 0
        let records: [FileRecord]
        do {
            records = try build(src) {
                calls += 1
                if calls == 3 {
                    rename(src + "/a", base + "/a-moved")
                    symlink(secret, src + "/a")
                }
            }
        } catch let e as BackupError {
            // Failing the run is fine too; following the link is not.
            #expect(e.message.contains("changed while it was archived"), "\(e)")
            return
        }
        let f1 = records.first { $0.path == "var/lib/maas/a/f1" }
        #expect(f1?.sha256 == HostileTree.sha256("mine\n"), "the walk followed the swapped-in symlink and archived root's file")
        #expect(f1?.sha256 != HostileTree.sha256("ROOT ONLY\n"))
    }

    @Test("a file swapped for a FIFO while it is walked never blocks the run")
    func fileSwappedForFIFO() throws {
        let base = try HostileTree.tempDir("fifo")
        defer { try? FileManager.default.removeItem(atPath: base) }
        let src = base + "/tree"
        try FileManager.default.createDirectory(atPath: src, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: base + "/spare", withIntermediateDirectories: true)
        try "data\n".write(toFile: src + "/x", atomically: false, encoding: .utf8)
        #expect(mkfifo(base + "/spare/fifo", 0o644) == 0)
        // The user flips x between a file and a FIFO as fast as it can.
        nonisolated(unsafe) var stop = false
        let flipper = Thread {
            while !stop {
                rename(src + "/x", base + "/spare/file")
                rename(base + "/spare/fifo", src + "/x")
                rename(src + "/x", base + "/spare/fifo")
                rename(base + "/spare/file", src + "/x")
            }
        }
        flipper.start()
        nonisolated(unsafe) var runs = 0, failures = 0, done = false
        let walker = Thread {
            let end = Date().addingTimeInterval(4)
            while Date() < end {
                do { _ = try build(src) } catch { failures += 1 }
                runs += 1
            }
            done = true
        }
        walker.start()
        let deadline = Date().addingTimeInterval(30)
        while !done && Date() < deadline { usleep(50_000) }
        stop = true
        if !done {
            Issue.record("the walk blocked on a FIFO (after \(runs) runs)")
            // Let the blocked open return, so the thread ends.
            for p in [src + "/x", base + "/spare/fifo"] {
                let fd = open(p, O_WRONLY | O_NONBLOCK)
                if fd >= 0 { close(fd) }
            }
            while !done { usleep(50_000) }
        }
        while !flipper.isFinished { usleep(10_000) }
        #expect(runs > 10, "only \(runs) walks ran")
    }
}

/// Backups of a region whose files a local user shaped, on the real components.
@Suite(.serialized, .enabled(if: TestEnv.skipReason == nil, "\(TestEnv.skipReason ?? "")"))
final class HostileTreeTests {
    let env: TestEnv

    init() throws { env = try TestEnv(name: "hostile") }
    deinit { env.down() }

    func backup(_ extra: [String] = [], config: String? = nil) throws -> (TestEnv.Result, String?) {
        let r = try env.tool(["--json"] + extra, config: config)
        let json = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]) ?? [:]
        return (r, json["archive"] as? String)
    }

    @Test("a name that is not UTF-8 and a tree deeper than PATH_MAX are backed up, verified and restored byte for byte")
    func nonUTF8RoundTrip() throws {
        let name = Array("caf".utf8) + [0xE9]
        try HostileTree.create(env.maas, name, "latin-1 name\n")
        try HostileTree.deepTree(env.maas, levels: 75, segment: String(repeating: "e", count: 60), content: "deep\n")
        let (r, archive) = try backup()
        #expect(r.status == 0, "backup failed: \(r.stderr)")
        let a = try #require(archive)
        let m = try RT.manifest(sidecarOf: a)
        let rec = try #require(m.files.first { $0.path.hasPrefix("var/lib/maas/caf") })
        #expect(rec.path == "var/lib/maas/caf\\xE9", "the readable form")
        let v = try env.tool(["verify", a])
        #expect(v.status == 0, "verify failed: \(v.stderr)")
        let l = try env.tool(["list"])
        #expect(l.status == 0)

        // Gone from the live tree, then restored with the same bytes.
        _ = try TestEnv.sh(["rm", "-rf", env.maas + "/" + String(repeating: "e", count: 60)])
        let dfd = open(env.maas, O_RDONLY | O_DIRECTORY)
        _ = (name + [0]).withUnsafeBufferPointer { $0.withMemoryRebound(to: CChar.self) { unlinkat(dfd, $0.baseAddress!, 0) } }
        close(dfd)
        #expect(!HostileTree.names(env.maas).contains(name))
        let x = try env.tool(["restore", a, "--yes"])
        #expect(x.status == 0, "restore failed: \(x.stderr)")
        #expect(HostileTree.names(env.maas).contains(name), "the name is not back byte for byte: \(HostileTree.names(env.maas).map { String(decoding: $0, as: UTF8.self) })")
        let f = try TestEnv.sh(["find", env.maas + "/" + String(repeating: "e", count: 60), "-name", "bottom"])
        #expect(f.stdout.contains("/bottom"), "the deep file was not restored: \(f.stderr)")
        RT.removeAsideFolders(root: env.root)
    }

    @Test("a snapshot folder pre-created by another user is not used: a non-empty one fails preflight, an empty one is made again")
    func foreignSnapshotFolder() throws {
        let folder = env.maas + "/.maas-snapshot-backup"
        try FileManager.default.createDirectory(atPath: folder + "/planted", withIntermediateDirectories: true)
        chown(folder, 65534, 65534)
        chmod(folder, 0o777)
        defer { _ = try? TestEnv.sh(["rm", "-rf", folder]) }
        let (r, archive) = try backup()
        #expect(r.status != 0, "a backup snapshotted into a folder another user owns")
        #expect(r.stderr.contains("not root"), "\(r.stderr)")
        #expect(archive == nil)
        #expect(try env.isActive("maas-regiond"))

        // Empty: removed and made again, root's and 0700, and the backup passes.
        try FileManager.default.removeItem(atPath: folder + "/planted")
        let (ok, a) = try backup()
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(a != nil)
        var st = stat()
        if lstat(folder, &st) == 0 { #expect(st.st_uid == 0 && st.st_mode & 0o777 == 0o700) }
    }

    @Test("with scope all, a database named like a connection string is dumped from this server, not elsewhere")
    func databaseNamedLikeAConnectionString() throws {
        _ = try env.psql("CREATE DATABASE \"host=/tmp/evil dbname=maasdb\"", db: "postgres")
        defer { _ = try? env.psql("DROP DATABASE \"host=/tmp/evil dbname=maasdb\"", db: "postgres") }
        _ = try env.psql("CREATE TABLE only_here (x int); INSERT INTO only_here VALUES (42)", db: "dbname='host=/tmp/evil dbname=maasdb'")  // psql -d expands a name with "="
        let cfg = env.dir + "/config-all.yaml"
        try (try String(contentsOfFile: env.config, encoding: .utf8)).replacingOccurrences(of: "  name: maasdb\n", with: "  name: maasdb\n  scope: all\n")
            .write(toFile: cfg, atomically: false, encoding: .utf8)
        let (r, archive) = try backup(config: cfg)
        #expect(r.status == 0, "backup failed: \(r.stderr)")
        let a = try #require(archive)
        let members = try RT.readMembers(a)
        let dump = String(decoding: try #require(members.first { $0.header.path == "dump.sql" }).data, as: UTF8.self)
        #expect(dump.contains("CREATE DATABASE \"host=/tmp/evil dbname=maasdb\""))
        #expect(dump.contains("only_here"), "the database's own tables are not in the dump")
    }
}
