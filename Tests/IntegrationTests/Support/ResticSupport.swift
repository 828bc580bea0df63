import Foundation
import TestSupport
import MaasBackupCore
import SystemPackage
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A private folder for one restic test: a password file (and a wrong one), archives made with
/// tar -czf from a tree of random files, and helpers to compare `restic dump` with `gzip -dc`.
final class ResticFixture: @unchecked Sendable {
    static var skipReason: String? {
        if Command.find("restic", extraDirs: ["/usr/bin"]) == nil { return "restic is not installed (apt-get install restic): the restic tests are skipped" }
        if geteuid() != 0 { return "the restic tests need root (their own sshd, root-owned secret files)" }
        return nil
    }
    static let host = "msb-test-host"
    static let serversScript = TestEnv.repo.path + "/Tests/Fixtures/restic-servers.sh"

    let dir: String
    var passwordFile: String { dir + "/secrets/password" }
    var wrongPasswordFile: String { dir + "/secrets/wrong-password" }
    static let password = "correct horse \(getpid())"

    init(_ name: String) throws {
        dir = "/tmp/msb-restic-\(name)-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        for d in [dir, dir + "/secrets", dir + "/archives", dir + "/out"] {
            try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        try (Self.password + "\n").write(toFile: passwordFile, atomically: false, encoding: .utf8)
        try "not the password\n".write(toFile: wrongPasswordFile, atomically: false, encoding: .utf8)
        chmod(passwordFile, 0o600)
        chmod(wrongPasswordFile, 0o600)
    }

    /// Stops the servers started in this folder and removes it.
    func cleanup() {
        _ = try? TestEnv.sh(["bash", Self.serversScript, "down", dir + "/servers"])
        try? FileManager.default.removeItem(atPath: dir)
    }

    func repository(_ repository: String, passwordFile: String? = nil, options: [String] = []) throws -> ResticRepository {
        try ResticRepository(ResticSettings(repository: repository, passwordFile: passwordFile ?? self.passwordFile,
                                            options: options, cacheDir: dir + "/state/restic-cache"))
    }

    /// A tree of `files` random files of 256 KiB (plus text and an empty folder), under `tree`.
    func makeTree(_ tree: String, files: Int = 16) throws -> String {
        let root = dir + "/" + tree
        try FileManager.default.createDirectory(atPath: root + "/var/lib/maas/secret", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/etc/maas/empty", withIntermediateDirectories: true)
        try "maas_url: http://10.0.0.1:5240/MAAS\n".write(toFile: root + "/etc/maas/regiond.conf", atomically: false, encoding: .utf8)
        var rng = SystemRandomNumberGenerator()
        for i in 0..<files {
            let bytes = (0..<(256 * 1024 / 8)).flatMap { _ in withUnsafeBytes(of: rng.next() as UInt64) { Array($0) } }
            try Data(bytes).write(to: URL(fileURLWithPath: root + "/var/lib/maas/blob-\(i).bin"))
        }
        return root
    }

    /// `archives/NAME.tar.gz` of `tree`, made by tar -czf.
    func makeArchive(_ name: String, of tree: String) throws -> String {
        let path = dir + "/archives/\(name).tar.gz"
        let r = try TestEnv.sh(["tar", "--sort=name", "--mtime=2026-01-01", "-czf", path, "-C", tree, "."])
        guard r.status == 0 else { throw TestFailure("tar -czf: \(r.stderr)") }
        return path
    }

    /// `gzip -dc ARCHIVE` into a file; returns its path.
    func gunzip(_ archive: String) async throws -> String {
        let out = dir + "/out/" + (archive as NSString).lastPathComponent + ".gunzip"
        let fd = try FileDescriptor.open(out, .writeOnly, options: [.create, .truncate], permissions: [.ownerReadWrite])
        defer { try? fd.close() }
        let r = try await Command.run("/bin/gzip", ["-dc", archive], stdoutTo: fd)
        guard r.succeeded else { throw TestFailure("gzip -dc: \(r.stderr)") }
        return out
    }

    /// `restic dump ID /NAME.tar` into a file; returns its path.
    func dump(_ repo: ResticRepository, _ snapshot: String, _ name: String) async throws -> String {
        let out = dir + "/out/\(name).dump-\(snapshot)"
        let fd = try FileDescriptor.open(out, .writeOnly, options: [.create, .truncate], permissions: [.ownerReadWrite])
        defer { try? fd.close() }
        try await repo.dump(snapshot: snapshot, name: name, to: fd)
        return out
    }

    static func sameBytes(_ a: String, _ b: String) throws -> Bool {
        let da = try Data(contentsOf: URL(fileURLWithPath: a)), db = try Data(contentsOf: URL(fileURLWithPath: b))
        return !da.isEmpty && da == db
    }

    static func size(_ path: String) -> Int64 {
        ((try? FileManager.default.attributesOfItem(atPath: path)[.size]) as? NSNumber)?.int64Value ?? -1
    }

    /// The error `body` throws as a BackupError (nil when it succeeds or throws something else).
    static func backupError(_ body: () async throws -> Void) async -> BackupError? {
        do { try await body(); return nil } catch let e as BackupError { return e } catch {
            Issue.record("expected a BackupError, got \(error)")
            return nil
        }
    }

    /// Lock files of a local-path repository (complete ones: a file restic was killed while
    /// writing is `ID-tmp-N`, which restic ignores).
    static func locks(_ repo: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: repo + "/locks")) ?? []).filter { $0.count == 64 && $0.allSatisfy(\.isHexDigit) }
    }

    static func freePort(from: Int) -> Int { freeLocalPort(from: from) }

    /// PIDs of this process's children running `comm` (from /proc; zombies left out).
    static func children(named comm: String) -> [pid_t] {
        let me = getpid()
        return ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry -> pid_t? in
            guard let pid = pid_t(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { return nil }
            let name = String(stat[stat.index(after: open)..<close])
            let rest = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
            guard name == comm, rest.count > 2, rest[0] != "Z", pid_t(rest[1]) == me else { return nil }
            return pid
        }
    }
}
