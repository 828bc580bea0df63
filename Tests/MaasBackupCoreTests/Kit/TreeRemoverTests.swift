import Foundation
import Testing
@testable import MaasBackupCore
#if canImport(Glibc)
import Glibc
#endif

/// The one recursive delete (issue 23): fd-relative, never through a symlink, never onto another
/// filesystem, byte-exact names, no PATH_MAX limit.
@Suite struct TreeRemoverTests {
    static func tempDir(_ name: String) throws -> String {
        let d = "/tmp/msb-rm-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    /// A root-owned folder outside the tree, with files root's deletes must never reach.
    static func victim() throws -> String {
        let v = try tempDir("victim")
        try FileManager.default.createDirectory(atPath: v + "/sub", withIntermediateDirectories: true)
        try "secret\n".write(toFile: v + "/keep", atomically: false, encoding: .utf8)
        try "secret\n".write(toFile: v + "/sub/keep", atomically: false, encoding: .utf8)
        return v
    }

    static func intact(_ v: String) -> Bool {
        FileManager.default.fileExists(atPath: v + "/keep") && FileManager.default.fileExists(atPath: v + "/sub/keep")
    }

    @Test("a subfolder swapped for a symlink to a root-owned folder while the walk runs: the symlink goes, the folder stays")
    func swappedSubfolderIsNotFollowed() throws {
        let v = try Self.victim()
        defer { try? FileManager.default.removeItem(atPath: v) }
        let tree = try Self.tempDir("tree")
        let away = try Self.tempDir("away")
        defer { try? FileManager.default.removeItem(atPath: away); try? FileManager.default.removeItem(atPath: tree) }
        try FileManager.default.createDirectory(atPath: tree + "/a/b/c", withIntermediateDirectories: true)
        for d in ["", "/a", "/a/b", "/a/b/c"] { try "x".write(toFile: tree + d + "/f", atomically: false, encoding: .utf8) }
        _ = chown(tree + "/a", 65534, 65534)  // the maas user's folder
        var swaps = 0
        try TreeRemover.remove(tree) { path in
            // At the pause: the owner moves the folder away and leaves a symlink to root's folder.
            guard path.hasSuffix("/a/b"), rename(path, away + "/b") == 0 else { return }
            #expect(symlink(v, path) == 0)
            swaps += 1
        }
        #expect(swaps == 1)
        #expect(Self.intact(v), "root's folder was emptied through the symlink")
        #expect(!FileManager.default.fileExists(atPath: tree))
    }

    @Test("symlinks to folders outside are unlinked, not followed; a non-UTF-8 name and a tree deeper than PATH_MAX are removed")
    func hostileTree() throws {
        let v = try Self.victim()
        defer { try? FileManager.default.removeItem(atPath: v) }
        let tree = try Self.tempDir("hostile")
        defer { try? FileManager.default.removeItem(atPath: tree) }
        #expect(symlink(v, tree + "/link") == 0)
        #expect(symlink(v + "/keep", tree + "/filelink") == 0)
        let odd: [CChar] = Array((tree + "/caf").utf8CString.dropLast()) + [CChar(bitPattern: 0xE9), 0]
        #expect(mkdir(odd, 0o755) == 0)
        // Deeper than PATH_MAX (4096): 100 levels of 60-byte names, made fd-relative.
        var fd = open(tree, O_RDONLY | O_DIRECTORY)
        let name = String(repeating: "d", count: 60)
        for _ in 0..<100 {
            #expect(mkdirat(fd, name, 0o755) == 0)
            let next = openat(fd, name, O_RDONLY | O_DIRECTORY)
            close(fd)
            fd = next
        }
        #expect(mkfifoat(fd, "fifo", 0o600) == 0)
        close(fd)
        try TreeRemover.remove(tree)
        #expect(!FileManager.default.fileExists(atPath: tree))
        #expect(Self.intact(v))
        // A file, a symlink and nothing at all.
        let file = try Self.tempDir("file") + "/f"
        try "x".write(toFile: file, atomically: false, encoding: .utf8)
        try TreeRemover.remove(file)
        #expect(!FileManager.default.fileExists(atPath: file))
        try TreeRemover.remove(file)
        try? FileManager.default.removeItem(atPath: (file as NSString).deletingLastPathComponent)
    }
}
