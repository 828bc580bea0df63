import Foundation
import TestSupport
import Testing
@testable import MaasBackupCore
#if canImport(Glibc)
import Glibc
#endif

/// state_dir holds the journals `recover` acts on as root (issue 23): it and every folder above it
/// must be root's and not writable by others, else every command refuses in one line (78) and
/// changes nothing.
@Suite(.serialized) struct StateDirTrustTests {
    static var binary: String? { ToolBinary.path }

    static func tempDir(_ name: String, mode: mode_t = 0o755) throws -> String {
        let d = "/tmp/msb-state-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        chmod(d, mode)
        return d
    }

    static func refusal(_ body: () throws -> Void) -> BackupError? {
        do { try body(); return nil } catch let e as BackupError { return e } catch { return BackupError.failed("\(error)") }
    }

    @Test("TrustedFolder: a 0777 folder, a writable parent, a symlink or another owner is refused; /tmp's sticky bit above is allowed")
    func check() throws {
        let root = try Self.tempDir("unit")
        defer { try? FileManager.default.removeItem(atPath: root) }
        #expect(Self.refusal { try TrustedFolder.check(root + "/state", key: "state_dir") } == nil, "a missing folder is made later")
        try FileManager.default.createDirectory(atPath: root + "/state", withIntermediateDirectories: true)
        #expect(Self.refusal { try TrustedFolder.check(root + "/state", key: "state_dir") } == nil)
        chmod(root + "/state", 0o777)
        var e = Self.refusal { try TrustedFolder.check(root + "/state", key: "state_dir") }
        #expect(e?.code == .config && e?.message.contains("writable by other users (mode 0777)") == true, "\(e?.description ?? "accepted")")
        chmod(root + "/state", 0o1777)
        #expect(Self.refusal { try TrustedFolder.check(root + "/state", key: "state_dir") } != nil, "sticky is not enough for the folder itself")
        chmod(root + "/state", 0o700)
        chmod(root, 0o777)
        e = Self.refusal { try TrustedFolder.check(root + "/state", key: "state_dir") }
        #expect(e?.message.contains("\(root) is writable by other users") == true, "\(e?.description ?? "accepted")")
        chmod(root, 0o755)
        #expect(symlink(root + "/state", root + "/link") == 0)
        e = Self.refusal { try TrustedFolder.check(root + "/link/x", key: "state_dir") }
        #expect(e?.message.contains("is not a folder (a symlink?)") == true, "\(e?.description ?? "accepted")")
        chown(root + "/state", 65534, 65534)
        e = Self.refusal { try TrustedFolder.check(root + "/state", key: "state_dir") }
        #expect(e?.message.contains("belongs to uid 65534") == true, "\(e?.description ?? "accepted")")
    }

    struct Run { var status: Int32; var stdout: String; var stderr: String }

    static func tool(_ args: [String]) throws -> Run {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try #require(binary, "build the tool first: swift build"))
        p.arguments = args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Run(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    /// A planted restore journal naming a root-owned folder as a tree the restore "created".
    static func plant(in state: String, victim: String) throws {
        try FileManager.default.createDirectory(atPath: state + "/restores", withIntermediateDirectories: true)
        let journal = """
            {"runID":"planted","pid":999999,"command":"restore","archive":"/x","startedAt":"2026-01-01T00:00:00Z",
             "phase":"restore-files","stoppedServices":[],"servicesRestarted":true,"database":"untouched","filesFinal":false,
             "swaps":[{"path":"/var/lib/maas","live":"\(victim)","member":"var/lib/maas","mode":"create","aside":"\(victim).msb-aside",
                       "keep":[],"leftInPlace":[],"moved":[],"carried":[],"madeSnapshotFolder":false,"asideDone":true,"allMoved":false,
                       "originalMode":493,"originalUid":0,"originalGid":0,"restoreBytes":0}]}
            """
        try journal.write(toFile: state + "/restores/planted.json", atomically: false, encoding: .utf8)
    }

    @Test("a 0777 state_dir, or one below a folder others can write: recover and status refuse in one line; the folder a planted journal names stays",
          .enabled(if: StateDirTrustTests.binary != nil && geteuid() == 0))
    func untrustedStateDirIsRefused() throws {
        for parentMode in [mode_t(0o755), 0o777] {
            let root = try Self.tempDir("cli", mode: 0o755)
            defer { try? FileManager.default.removeItem(atPath: root) }
            let victim = try Self.tempDir("victim")
            defer { try? FileManager.default.removeItem(atPath: victim) }
            try "root's\n".write(toFile: victim + "/keep", atomically: false, encoding: .utf8)
            let parent = root + "/shared"
            try FileManager.default.createDirectory(atPath: parent + "/state", withIntermediateDirectories: true)
            let state = parent + "/state"
            chmod(parent, parentMode)
            chmod(state, parentMode == 0o777 ? 0o700 : 0o777)
            try Self.plant(in: state, victim: victim)
            let cfg = root + "/config.yaml"
            try "state_dir: \(state)\nlock_file: \(root)/run/lock\ndestination: \(root)/backups\n".write(toFile: cfg, atomically: false, encoding: .utf8)
            for cmd in ["recover", "status"] {
                let r = try Self.tool([cmd, "--config", cfg])
                #expect(r.status == 78, "\(cmd) (parent \(String(parentMode, radix: 8))): \(r.status) \(r.stderr)")
                let lines = r.stderr.split(separator: "\n")
                #expect(lines.count == 1 && r.stderr.contains("writable by other users"), "\(cmd): \(r.stderr)")
            }
            #expect(FileManager.default.fileExists(atPath: victim + "/keep"), "recover deleted the folder a planted journal named")
            #expect(FileManager.default.fileExists(atPath: state + "/restores/planted.json"))
        }
    }
}
