import Foundation
import Testing
@testable import MaasBackupCore

/// Records what the hook runner did: backups asked for and lines logged.
final class AptHookRecorder: @unchecked Sendable {
    private let lock = NSLock()
    private var _reasons: [String] = []
    private var _lines: [(LogLevel, String)] = []
    var reasons: [String] { lock.withLock { _reasons } }
    var lines: [String] { lock.withLock { _lines.map(\.1) } }
    /// The priority each line was passed with.
    var levels: [LogLevel] { lock.withLock { _lines.map(\.0) } }
    func backup(_ reason: String) { lock.withLock { _reasons.append(reason) } }
    func log(_ level: LogLevel, _ line: String) { lock.withLock { _lines.append((level, line)) } }
}

/// Runs the apt hook with `input` on a pipe, as apt would.
func aptHookRun(_ input: [UInt8], block: Bool, markers: String, failWith: Error? = nil) async -> (Int32, AptHookRecorder) {
    let rec = AptHookRecorder()
    var fds: [Int32] = [0, 0]
    guard pipe(&fds) == 0 else { return (-1, rec) }
    let writer = fds[1]
    let t = Thread {
        input.withUnsafeBytes { p in
            var off = 0
            while off < p.count {
                let n = write(writer, p.baseAddress! + off, p.count - off)
                if n <= 0 { break }
                off += n
            }
        }
        close(writer)
    }
    t.start()
    let rc = await PackageHookRunner.apt(environment: ["APT_HOOK_INFO_FD": "\(fds[0])"], block: block,
                                         log: { rec.log($0, $1) }, markerDirectory: markers) { reason in
        rec.backup(reason)
        if let failWith { throw failWith }
    }
    close(fds[0])
    return (rc, rec)
}

@Suite("package hook runner")
struct AptHookRunnerTests {
    let upgrade = aptHookInput(["maas-region-controller 1:3.4.0-1 amd64 none < 1:3.5.0-1 amd64 none /var/cache/apt/archives/m.deb"])

    func markerDir() -> String { NSTemporaryDirectory() + "msb-markers-\(UUID().uuidString)" }

    @Test func aptUpgradeBacksUpAndLeavesAMarker() async throws {
        let dir = markerDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (rc, rec) = await aptHookRun(upgrade, block: true, markers: dir)
        #expect(rc == 0)
        #expect(rec.reasons == ["pre-upgrade maas-region-controller 1:3.4.0-1 -> 1:3.5.0-1"])
        // The marker names our nearest non-shell ancestor (here: whatever runs the tests).
        let frontEnd = try #require(AptRunMarker.frontEnd(in: ProcessTable().ancestors(of: getpid())))
        let markers = AptRunMarker.readMarkers(directory: dir)
        #expect(markers[AptRunMarker.fileName(for: frontEnd)] == AptRunMarker.content(for: frontEnd))
    }

    @Test func aptWithoutMaasChangesTakesNoBackup() async {
        let dir = markerDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (rc, rec) = await aptHookRun(aptHookInput(["vim 1 amd64 none < 2 amd64 none /x.deb",
                                                       "maas-cli - - none < 1:3.5.0-1 all none /y.deb"]), block: true, markers: dir)
        #expect(rc == 0 && rec.reasons.isEmpty && rec.lines.isEmpty)
    }

    @Test func failedBackupBlocksOrWarns() async {
        let dir = markerDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let failure = BackupError.unavailable("PostgreSQL is not running")
        var (rc, rec) = await aptHookRun(upgrade, block: true, markers: dir, failWith: failure)
        #expect(rc == ExitCode.unavailable.rawValue)
        #expect(rec.lines.contains { $0.contains("the backup before the package change failed: PostgreSQL is not running") })
        #expect(rec.lines.contains { $0.contains("hook.on_failure: warn") && $0.contains("MAAS_SNAPSHOT_BACKUP_SKIP=1 apt upgrade") })
        // The priority comes with each line: the blocked upgrade's lines are errors, the start info.
        #expect(rec.levels.first == .info && rec.levels.dropFirst().allSatisfy { $0 == .error }, "\(rec.levels) \(rec.lines)")
        (rc, rec) = await aptHookRun(upgrade, block: false, markers: dir, failWith: failure)
        #expect(rc == 0)
        #expect(rec.lines.last?.contains("going on without a backup") == true)
        #expect(rec.levels.last == .warning, "hook.on_failure: warn: a warning, whatever its text")
    }

    @Test func malformedInputBlocksOrWarns() async {
        let dir = markerDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var (rc, rec) = await aptHookRun(Array("VERSION 2\n\n".utf8), block: true, markers: dir)
        #expect(rc == ExitCode.dataError.rawValue && rec.reasons.isEmpty)
        #expect(rec.lines.first?.contains("apt hook protocol version \"2\" is not supported") == true)
        (rc, rec) = await aptHookRun(Array("VERSION 3\nA=b\n".utf8), block: false, markers: dir)
        #expect(rc == 0 && rec.reasons.isEmpty)
        #expect(rec.lines.first?.contains("truncated") == true)
        // Not run by apt at all.
        rc = await PackageHookRunner.apt(environment: [:], block: true, log: { _, _ in }, markerDirectory: dir) { _ in }
        #expect(rc == ExitCode.dataError.rawValue)
    }

    @Test func dpkgHookDecidesFromProcAndSkipsUnderApt() async throws {
        let (table, root) = try aptHookFakeProc()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let dir = markerDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // dpkg (pid 400, cwd /var/tmp) runs "--unpack a.deb": an upgrade of maas-region-controller.
        let inspector = AptHookFakeInspector(
            debs: ["/var/tmp/a.deb": DebControl(package: "maas-region-controller", version: "1:3.5.0-1", architecture: "amd64")],
            db: [aptHookRegion34])
        let rec = AptHookRecorder()
        var rc = await PackageHookRunner.dpkg(environment: ["DPKG_HOOK_ACTION": "unpack"], block: true, log: { rec.log($0, $1) },
                                              markerDirectory: dir, table: table, pid: 500, inspector: inspector) { rec.backup($0) }
        #expect(rc == 0)
        #expect(rec.reasons == ["pre-upgrade maas-region-controller 1:3.4.0-1 -> 1:3.5.0-1"])

        // apt-get (pid 300, start 1000) ran its hook already: the dpkg hook stays quiet.
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try "300 1000\n".write(toFile: dir + "/apt-run-300", atomically: true, encoding: .utf8)
        rc = await PackageHookRunner.dpkg(environment: ["DPKG_HOOK_ACTION": "unpack"], block: true, log: { rec.log($0, $1) },
                                          markerDirectory: dir, table: table, pid: 500, inspector: inspector) { rec.backup($0) }
        #expect(rc == 0 && rec.reasons.count == 1)

        rc = await PackageHookRunner.dpkg(environment: [:], block: false, log: { rec.log($0, $1) },
                                          markerDirectory: dir, table: table, pid: 500, inspector: inspector) { rec.backup($0) }
        #expect(rc == ExitCode.usage.rawValue)
    }
}
