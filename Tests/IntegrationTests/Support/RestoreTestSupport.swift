import Foundation
import LibArchive
import MaasBackupCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

extension TestEnv {
    func systemctl(_ args: [String]) throws -> TestEnv.Result {
        try RT.spawn([dir + "/bin/systemctl"] + args, env: environment)
    }
}

/// One TestEnv for a whole suite: made before its first test, torn down after its last.
/// Tests reach it through `SharedEnv.get()`.
final class SharedEnv: @unchecked Sendable {
    @TaskLocal static var current: SharedEnv?

    let env: TestEnv
    private let lock = NSLock()
    private var baseline: String?

    init(name: String) throws { env = try TestEnv(name: name) }

    static func get() throws -> SharedEnv { try #require(current, "the suite's shared environment is missing") }

    /// One backup of the environment, taken once and shared by the suite's tests.
    func baselineArchive() throws -> String {
        lock.lock(); defer { lock.unlock() }
        if let b = baseline { return b }
        let r = try env.tool(["--json", "--reason", "baseline"])
        guard r.status == 0 else { throw TestFailure("baseline backup failed: \(r.stderr)") }
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] ?? [:]
        let a = try #require(json["archive"] as? String)
        baseline = a
        return a
    }
}

/// `.sharedEnv("name")`: the suite trait that makes and removes the SharedEnv.
struct SharedEnvTrait: SuiteTrait, TestScoping {
    let name: String
    var isRecursive: Bool { false }
    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        let shared = try SharedEnv(name: name)
        defer { shared.env.down() }
        try await SharedEnv.$current.withValue(shared) { try await function() }
    }
}

extension Trait where Self == SharedEnvTrait {
    static func sharedEnv(_ name: String) -> Self { SharedEnvTrait(name: name) }
}

enum RT {
    /// Runs the tool (stdin /dev/null) in `env`.
    static func tool(_ env: TestEnv, _ args: [String], extraEnv: [String: String] = [:]) throws -> TestEnv.Result {
        try env.tool(args, env: extraEnv)
    }

    /// posix_spawn with stdin /dev/null, stdout and stderr collected, every other descriptor closed,
    /// an empty signal mask and default signal actions; waits for the program.
    static func spawn(_ argv: [String], env: [String: String]? = nil) throws -> TestEnv.Result {
        var outP: [Int32] = [0, 0], errP: [Int32] = [0, 0]
        guard pipe(&outP) == 0, pipe(&errP) == 0 else { throw TestFailure("pipe: errno \(errno)") }
        let pid: pid_t
        do { pid = try launch(argv, env: env, stdout: outP[1], stderr: errP[1]) } catch {
            for fd in outP + errP { close(fd) }
            throw error
        }
        close(outP[1]); close(errP[1])
        nonisolated(unsafe) var errData = Data()
        let errFD = errP[0]
        let t = Thread { errData = FileHandle(fileDescriptor: errFD, closeOnDealloc: true).readDataToEndOfFile() }
        t.start()
        let outData = FileHandle(fileDescriptor: outP[0], closeOnDealloc: true).readDataToEndOfFile()
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        while !t.isFinished { usleep(1000) }
        let code: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return TestEnv.Result(status: code, stdout: String(decoding: outData, as: UTF8.self), stderr: String(decoding: errData, as: UTF8.self))
    }

    /// Starts a program with its output discarded; returns its PID (reap it with waitpid).
    static func spawnDetached(_ argv: [String], env: [String: String]) throws -> pid_t {
        let devnull = open("/dev/null", O_WRONLY)
        defer { close(devnull) }
        return try launch(argv, env: env, stdout: devnull, stderr: devnull)
    }

    static func launch(_ argv: [String], env: [String: String]?, stdout: Int32, stderr: Int32) throws -> pid_t {
        // glibc 2.34+: every other descriptor closed in the child.
        guard Spawn.closesOtherDescriptors else { throw TestFailure("posix_spawn_file_actions_addclosefrom_np is missing (glibc < 2.34)") }
        do {
            return try Spawn.start(argv, env: env ?? ProcessInfo.processInfo.environment, .init(stdin: .null, stdout: .fd(stdout), stderr: .fd(stderr)))
        } catch {
            throw TestFailure("posix_spawn \(argv[0]): \(error.description)")
        }
    }

    static func json(_ r: TestEnv.Result) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]) ?? [:]
    }

    static func manifest(sidecarOf archive: String) throws -> Manifest {
        try Manifest.decode(Array(try Data(contentsOf: URL(fileURLWithPath: archive + ".manifest.json"))))
    }

    /// Files the stand-in daemons keep rewriting.
    static let volatile: Set<String> = ["var/lib/maas/counter", "var/lib/maas/counter.tmp", "var/lib/maas/rackd-heartbeat"]
    /// Files that exist only for an instant (written, then renamed over `counter`): left out of
    /// fingerprints, since whether one is caught is chance.
    static let transient: Set<String> = ["var/lib/maas/counter.tmp"]

    struct Entry: Equatable, CustomStringConvertible {
        var type: String
        var mode: UInt32
        var uid: UInt32
        var gid: UInt32
        var content: String
        var description: String { "\(type) \(String(mode, radix: 8)) \(uid):\(gid) \(content)" }
    }

    /// Every entry below root's etc/maas and var/lib/maas (keyed by member path), without the
    /// tool's .maas-snapshot-backup folder; volatile files by type only, transient ones not at all.
    static func fingerprint(root: String, members: [String] = ["etc/maas", "var/lib/maas"]) -> [String: Entry] {
        var out: [String: Entry] = [:]
        func walk(_ member: String) {
            let p = root + "/" + member
            if transient.contains(member) { return }
            var st = stat()
            guard lstat(p, &st) == 0 else { return }
            let fmt = st.st_mode & S_IFMT
            var e = Entry(type: "other", mode: UInt32(st.st_mode & 0o7777), uid: st.st_uid, gid: st.st_gid, content: "")
            switch fmt {
            case S_IFDIR:
                e.type = "dir"
                // Volatile files are looked up by name too: on Btrfs, readdir can miss a file that
                // is renamed over while the folder is read (FingerprintTests).
                var names = Set((try? FileManager.default.contentsOfDirectory(atPath: p)) ?? [])
                for v in volatile where (v as NSString).deletingLastPathComponent == member {
                    names.insert((v as NSString).lastPathComponent)
                }
                for n in names.sorted() where n != ".maas-snapshot-backup" {
                    walk(member + "/" + n)
                }
            case S_IFLNK:
                e.type = "link"
                e.content = (try? FileManager.default.destinationOfSymbolicLink(atPath: p)) ?? "?"
            case S_IFREG:
                e.type = "file"
                e.content = volatile.contains(member) ? "(volatile)" : sha256(p)
            default: break
            }
            if volatile.contains(member) { e.mode = 0; e.uid = 0; e.gid = 0 }
            out[member] = e
        }
        for m in members { walk(m) }
        return out
    }

    static func sha256(_ path: String) -> String {
        guard let r = try? spawn(["/usr/bin/sha256sum", "--", path]), r.status == 0 else { return "unreadable" }
        return String(r.stdout.prefix(64))
    }

    /// The differences between two fingerprints, for messages.
    static func diff(_ a: [String: Entry], _ b: [String: Entry]) -> [String] {
        var out: [String] = []
        for k in Set(a.keys).union(b.keys).sorted() where a[k] != b[k] {
            out.append("\(k): \(a[k]?.description ?? "absent") vs \(b[k]?.description ?? "absent")")
        }
        return out
    }

    /// Aside folders restore leaves (or should not leave) behind.
    static func asideFolders(root: String) -> [String] { restoreFolders(root: root, named: "pre-restore-") }

    /// Staging folders a restore extracted into (`<path>.restoring-<time>`, and
    /// `.maas-snapshot-backup/restoring-<time>` inside a mount point): none is left after a restore
    /// or its undo.
    static func stagingFolders(root: String) -> [String] { restoreFolders(root: root, named: "restoring-") }

    /// `<path>.<prefix>*` beside /etc/maas and /var/lib/maas, and `<prefix>*` in /var/lib/maas's snapshot folder.
    static func restoreFolders(root: String, named prefix: String) -> [String] {
        var found: [String] = []
        for parent in [root + "/etc", root + "/var/lib"] {
            for n in (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? [] where n.contains("." + prefix) {
                found.append(parent + "/" + n)
            }
        }
        let inner = root + "/var/lib/maas/.maas-snapshot-backup"
        for n in (try? FileManager.default.contentsOfDirectory(atPath: inner)) ?? [] where n.hasPrefix(prefix) {
            found.append(inner + "/" + n)
        }
        return found.sorted()
    }

    /// Removes aside folders (between tests).
    static func removeAsideFolders(root: String) {
        for p in asideFolders(root: root) { try? FileManager.default.removeItem(atPath: p) }
        _ = rmdir(root + "/var/lib/maas/.maas-snapshot-backup")
    }

    // MARK: - Archive surgery

    struct Member {
        var header: EntryHeader
        var data: [UInt8]
    }

    /// All members of a tar.gz, with their data.
    static func readMembers(_ archive: String) throws -> [Member] {
        let r = try TarReader(path: archive)
        var out: [Member] = []
        var buf = [UInt8](repeating: 0, count: 1 << 16)
        while let h = try r.nextHeader() {
            var data: [UInt8] = []
            if h.kind == .file {
                try buf.withUnsafeMutableBytes { b in
                    while true {
                        let n = try r.readData(into: b)
                        if n == 0 { break }
                        data += b[0..<n]
                    }
                }
            }
            out.append(Member(header: h, data: data))
        }
        return out
    }

    /// Writes members as a pax tar, gzipped by gzip(1), to `path`.
    static func writeArchive(_ members: [Member], to path: String) throws {
        var tarBytes: [UInt8] = []
        let w = try TarWriter(output: { tarBytes += $0 })
        for m in members {
            var h = m.header
            if h.kind == .file { h.size = Int64(m.data.count) }
            try w.writeHeader(h)
            if h.kind == .file { try m.data.withUnsafeBytes { try w.writeData($0) } }
            try w.finishEntry()
        }
        try w.close()
        let tar = path + ".tar-tmp"
        try Data(tarBytes).write(to: URL(fileURLWithPath: tar))
        let r = try spawn(["/bin/gzip", "-n", "-f", tar])
        guard r.status == 0 else { throw TestFailure("gzip: \(r.stderr)") }
        try? FileManager.default.removeItem(atPath: path)
        try FileManager.default.moveItem(atPath: tar + ".gz", toPath: path)
    }

    static func sha256Hex(_ bytes: [UInt8]) throws -> String {
        let tmp = "/tmp/msb-sha-\(getpid())-\(UUID().uuidString.prefix(6))"
        try Data(bytes).write(to: URL(fileURLWithPath: tmp))
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        return sha256(tmp)
    }

    /// The manifest inside a member list.
    static func manifest(in members: [Member]) throws -> Manifest {
        try Manifest.decode(try #require(members.last { $0.header.path == "manifest.json" }).data)
    }

    /// Puts `m` in place of the manifest and signs it again with the shared environment's key, the
    /// key its backups are signed with (`sign: false`: the archive is left unsigned, as a forger
    /// without the key would leave it).
    static func replaceManifest(_ members: inout [Member], _ m: Manifest, sign: Bool = true) throws {
        let i = try #require(members.lastIndex { $0.header.path == "manifest.json" })
        members[i].data = try m.encoded()
        let key = try SharedEnv.current.flatMap { try HostKey.load(path: $0.env.signingKey) }
        try setSignature(&members, key: sign ? key : nil)
    }

    /// Replaces manifest.sig by `key`'s signature of the manifest member (removes it when `key` is nil).
    static func setSignature(_ members: inout [Member], key: HostKey?) throws {
        members.removeAll { $0.header.path == ManifestSignature.member }
        guard let key else { return }
        let i = try #require(members.lastIndex { $0.header.path == "manifest.json" })
        var h = members[i].header
        h.path = ManifestSignature.member
        members.insert(Member(header: h, data: try key.signature(of: members[i].data)), at: i + 1)
    }
}
