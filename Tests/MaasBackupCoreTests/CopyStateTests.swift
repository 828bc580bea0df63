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

    @Test func metricsKeepOtherLinesAndReplaceTheCopyGauges() throws {
        let d = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: d) }
        let path = d + "/m.prom"
        let backup = "# HELP maas_snapshot_backup_last_run_success x\n# TYPE maas_snapshot_backup_last_run_success gauge\nmaas_snapshot_backup_last_run_success 1\n"
        try backup.write(toFile: path, atomically: false, encoding: .utf8)
        let t = Date(timeIntervalSince1970: 1_800_000_000)
        #expect(CopyMetrics.update(path: path, success: true, durationMs: 1234.5, bytes: 42, now: t) == nil)
        var text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.hasPrefix(backup), "the backup's gauges stay")
        #expect(text.contains("maas_snapshot_backup_last_copy_success 1\n"))
        #expect(text.contains("maas_snapshot_backup_last_copy_success_timestamp_seconds 1800000000\n"))
        #expect(text.contains("maas_snapshot_backup_last_copy_bytes 42\n"))
        #expect(text.contains("maas_snapshot_backup_last_copy_duration_milliseconds 1234.5\n"))

        // A failure: success 0, the last success's time and bytes carried over, each gauge once.
        #expect(CopyMetrics.update(path: path, success: false, durationMs: 10, bytes: nil, now: t.addingTimeInterval(60)) == nil)
        text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.contains("maas_snapshot_backup_last_copy_success 0\n"))
        #expect(text.contains("maas_snapshot_backup_last_copy_timestamp_seconds 1800000060\n"))
        #expect(text.contains("maas_snapshot_backup_last_copy_success_timestamp_seconds 1800000000\n"))
        #expect(text.contains("maas_snapshot_backup_last_copy_bytes 42\n"))
        for (name, _) in CopyMetrics.help {
            #expect(text.components(separatedBy: "\nmaas_snapshot_backup_\(name) ").count == 2, "\(name) once")
        }
        #expect(Self.mode(path) == 0o644, "node_exporter reads it")
    }

    @Test func copyNeedsARemoteSection() async throws {
        let e = await ResticFixtureless.error { _ = try await CopyPipeline(config: Config()).copy() }
        #expect(e?.code == .config)
        #expect(e?.message.contains("no remote: section") == true)
    }
}

enum ResticFixtureless {
    static func error(_ body: () async throws -> Void) async -> BackupError? {
        do { try await body(); return nil } catch let e as BackupError { return e } catch { return nil }
    }
}
