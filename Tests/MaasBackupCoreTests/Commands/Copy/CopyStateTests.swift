import Foundation
import MaasBackupCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The copy's state file and its gauges in the metrics textfile (no restic needed).
@Suite("copy state and metrics")
struct CopyStateTests {
    func tempDir() throws -> String {
        let d = NSTemporaryDirectory() + "/msb-copystate-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    /// Permission bits of `path`, or -1.
    static func mode(_ path: String) -> Int {
        var st = stat()
        guard lstat(path, &st) == 0 else { return -1 }
        return Int(st.st_mode & 0o777)
    }

    @Test func stateRoundTripsAndIsPrivate() throws {
        let d = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: d) }
        let stateDir = d + "/state"
        #expect(CopyState.load(stateDir: stateDir) == CopyState(), "no file: an empty state")
        var s = CopyState()
        s.last = .init(status: "failed", at: "2026-11-29T10:00:00Z", archives: ["maas-backup-h-20261129T100000Z"], error: "copy failed: x")
        s.pending = ["maas-backup-h-20261129T100000Z"]
        try s.save(stateDir: stateDir)
        #expect(CopyState.load(stateDir: stateDir) == s)
        #expect(Self.mode(CopyState.path(stateDir: stateDir)) == 0o600)
        #expect(Self.mode(stateDir) == 0o700, "the state folder is made private")
        // A damaged file reads as empty rather than failing a backup.
        try "{not json".write(toFile: CopyState.path(stateDir: stateDir), atomically: false, encoding: .utf8)
        #expect(CopyState.load(stateDir: stateDir) == CopyState())
    }

    @Test func metricsKeepTheBackupGaugesAndReplaceTheCopyGauges() throws {
        let d = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: d) }
        let path = d + "/m.prom"
        let state = d + "/state"
        let t = Date(timeIntervalSince1970: 1_800_000_000)
        #expect(MetricsFile.update(stateDir: state, path: path) { $0["last_run_success"] = 1 } == nil)
        #expect(CopyMetrics.update(stateDir: state, path: path, success: true, durationMs: 1234.5, bytes: 42, now: t) == nil)
        var text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.contains("maas_snapshot_backup_last_run_success 1\n"), "the backup's gauges stay")
        #expect(text.contains("maas_snapshot_backup_last_copy_success 1\n"))
        #expect(text.contains("maas_snapshot_backup_last_copy_success_timestamp_seconds 1800000000\n"))
        #expect(text.contains("maas_snapshot_backup_last_copy_bytes 42\n"))
        #expect(text.contains("maas_snapshot_backup_last_copy_duration_seconds 1.2345\n"), "durations in seconds, Prometheus's base unit")
        #expect(text.contains("maas_snapshot_backup_build_info{version=\"\(ToolInfo.version)\"} 1\n"))
        #expect(!text.contains("milliseconds"))

        // A failure: success 0, the last success's time and bytes carried over, each gauge once.
        #expect(CopyMetrics.update(stateDir: state, path: path, success: false, durationMs: 10, bytes: nil, now: t.addingTimeInterval(60)) == nil)
        text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.contains("maas_snapshot_backup_last_copy_success 0\n"))
        #expect(text.contains("maas_snapshot_backup_last_copy_timestamp_seconds 1800000060\n"))
        #expect(text.contains("maas_snapshot_backup_last_copy_success_timestamp_seconds 1800000000\n"))
        #expect(text.contains("maas_snapshot_backup_last_copy_bytes 42\n"))
        for (name, _) in MetricsFile.help {
            #expect(text.components(separatedBy: "\nmaas_snapshot_backup_\(name) ").count == 2, "\(name) once")
        }
        #expect(Self.mode(path) == 0o644, "node_exporter reads it")
        #expect(Self.mode(MetricsFile.statePath(stateDir: state)) == 0o600)
    }

    @Test("a textfile swapped for a symlink to a root-only file: its text is never copied into the 0644 file (issue 23)")
    func metricsNeverReadThePath() throws {
        let d = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: d) }
        let textDir = d + "/textfile"  // the node_exporter folder, another user's
        try FileManager.default.createDirectory(atPath: textDir, withIntermediateDirectories: true)
        _ = chown(textDir, 65534, 65534)
        let secret = d + "/shadow"
        try "maas_snapshot_backup_archive_bytes 99\nroot:hunter2\n".write(toFile: secret, atomically: false, encoding: .utf8)
        _ = chmod(secret, 0o600)
        let path = textDir + "/maas.prom"
        #expect(symlink(secret, path) == 0)
        #expect(CopyMetrics.update(stateDir: d + "/state", path: path, success: true, durationMs: 1, bytes: 1) == nil)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(!text.contains("hunter2"), "the secret was copied into the textfile")
        #expect(!text.contains("archive_bytes 99"), "a value was read from the file at the path")
        #expect(Self.mode(path) == 0o644 && Self.mode(secret) == 0o600)
        #expect(try String(contentsOfFile: secret, encoding: .utf8).contains("hunter2"))
    }

    @Test func copyNeedsARemoteSection() async throws {
        let e = await ResticFixtureless.error { _ = try await CopyPipeline(config: Config()).copy() }
        #expect(e?.code == .config)
        #expect(e?.message.contains("no remote: section") == true)
    }

    @Test("a partial backup (archive written, copy failed) is not a success for an alert; the kind's own last-success time is set")
    func partialRunIsNotASuccess() {
        let r = BackupResult(status: "partial", sizeBytes: 10, snapshotMethod: "btrfs", servicesStopped: [], downtimeMs: 12,
                             window: [], durationMs: 3400, reason: "pre-upgrade maas-common 1:3.4 -> 1:3.5", dryRun: false, failedSteps: ["copy"])
        var v: [String: Double] = [:]
        Metrics.apply(.success(r), to: &v, now: 100)
        #expect(v["last_run_success"] == 0 && v["last_run_exit_code"] == 3, "\(v)")
        #expect(v["last_pre_upgrade_success_timestamp_seconds"] == 100 && v["last_scheduled_success_timestamp_seconds"] == nil, "\(v)")
        #expect(v["duration_seconds"] == 3.4 && v["downtime_seconds"] == 0.012, "\(v)")
    }
}

enum ResticFixtureless {
    static func error(_ body: () async throws -> Void) async -> BackupError? {
        do { try await body(); return nil } catch let e as BackupError { return e } catch { return nil }
    }

}
