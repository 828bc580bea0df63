import Foundation
import MaasBackupCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `status`: the last run of each kind from the tool's records, the age bound and the exit codes
/// (no database, no systemd: a config in a temporary folder).
@Suite("status: last runs and exit codes")
struct StatusRunsTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)

    func tempConfig() throws -> Config {
        let d = NSTemporaryDirectory() + "/msb-status-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: d + "/dest", withIntermediateDirectories: true)
        var c = Config()
        c.root = d
        c.destination = d + "/dest"
        c.stateDir = d + "/state"
        c.database.host = "127.0.0.1"
        c.database.name = "maasdb"
        return c
    }

    func archive(_ c: Config, hoursAgo: Double) throws {
        let name = ArchiveName.make(host: "region", date: Self.now.addingTimeInterval(-hoursAgo * 3600))
        FileManager.default.createFile(atPath: c.destination + "/" + name, contents: Data())
    }

    func report(_ c: Config) -> StatusReport {
        StatusCheck.run(config: c, configPath: "/dev/null", configError: nil, now: Self.now)
    }

    @Test("every kind is listed, never run: never; no backup at all is too old (exit 4)")
    func nothingYet() throws {
        let c = try tempConfig()
        defer { try? FileManager.default.removeItem(atPath: c.root) }
        let r = report(c)
        #expect(r.lastRuns.map(\.kind) == ["backup", "pre_upgrade_backup", "copy", "verify", "prune", "restore"])
        #expect(r.lastRuns.allSatisfy { $0.result == "never" && $0.at == nil }, "\(r.lastRuns)")
        #expect(r.newestBackupAgeSeconds == nil && r.backupTooOld)
        #expect(r.exitCode(servicesDown: false) == 4)
        #expect(r.exitCode(servicesDown: true) == 1)
        // A config that does not load comes first: its destination is only the defaults' guess.
        let broken = StatusCheck.run(config: nil, configPath: "/dev/null", configError: "not valid YAML", now: Self.now)
        #expect(broken.exitCode(servicesDown: false) == 78)
        #expect([Human.age(45), Human.age(5400), Human.age(200_000), Human.age(7200)] == ["45 s", "1 h 30 min", "2 d 7 h", "2 h"])
    }

    @Test("the newest backup against status.max_backup_age_hours: 0 ok under it, 4 over it, never with 0")
    func ageBound() throws {
        var c = try tempConfig()
        defer { try? FileManager.default.removeItem(atPath: c.root) }
        try archive(c, hoursAgo: 40)
        var r = report(c)
        #expect(r.newestBackupAgeSeconds == 40 * 3600 && r.maxBackupAgeHours == 36 && r.backupTooOld)
        #expect(r.exitCode(servicesDown: false) == 4)
        c.status.maxBackupAgeHours = 48
        r = report(c)
        #expect(!r.backupTooOld && r.exitCode(servicesDown: false) == 0)
        c.status.maxBackupAgeHours = 0
        try? FileManager.default.removeItem(atPath: c.destination)
        try FileManager.default.createDirectory(atPath: c.destination, withIntermediateDirectories: true)
        r = report(c)
        #expect(!r.backupTooOld && r.exitCode(servicesDown: false) == 0, "0: no bound, not even for no backup")
        c.status.maxBackupAgeHours = 36
        try archive(c, hoursAgo: 2)
        r = report(c)
        #expect(r.newestBackupAgeSeconds == 2 * 3600 && r.exitCode(servicesDown: false) == 0)
    }

    @Test("each kind from the records: a failed pre-upgrade run, a partial scheduled one, prune, rollback, verify, copy")
    func eachKind() throws {
        var c = try tempConfig()
        defer { try? FileManager.default.removeItem(atPath: c.root) }
        c.remote = try Config.parse(yaml: "remote:\n  repository: /srv/restic\n  password_file: /etc/pw\n").remote
        try archive(c, hoursAgo: 1)
        let t = Self.now.timeIntervalSince1970
        let partial = BackupResult(status: "partial", sizeBytes: 10, snapshotMethod: "btrfs", servicesStopped: [], downtimeMs: 12,
                                   window: [], durationMs: 3400, reason: "manual", dryRun: false, failedSteps: ["copy"])
        Metrics.write(stateDir: c.stateDir, path: nil, outcome: .success(partial), now: Date(timeIntervalSince1970: t - 7200))
        Metrics.write(stateDir: c.stateDir, path: nil, outcome: .failure(exitCode: 69, durationMs: 5, reason: "pre-upgrade maas 1 -> 2"),
                      now: Date(timeIntervalSince1970: t - 3600))
        #expect(PruneMetrics.record(config: c, code: .success, removed: 2, freedBytes: 100, now: Date(timeIntervalSince1970: t - 60)) == nil)
        #expect(RestoreMetrics.record(config: c, code: .failed, rollback: true, seconds: 3, downtimeSeconds: nil,
                                      now: Date(timeIntervalSince1970: t - 120)) == nil)
        var copy = CopyState()
        copy.last = .init(status: "failed", at: ArchiveName.iso8601(Date(timeIntervalSince1970: t - 300)), archives: ["maas-backup-x"], error: "boom")
        try copy.save(stateDir: c.stateDir)

        let r = report(c)
        let by = Dictionary(uniqueKeysWithValues: r.lastRuns.map { ($0.kind, $0) })
        #expect(by["backup"]?.result == "partial" && by["backup"]?.exitCode == 3 && by["backup"]?.ageSeconds == 7200, "\(r.lastRuns)")
        #expect(by["pre_upgrade_backup"]?.result == "failed" && by["pre_upgrade_backup"]?.exitCode == 69 && by["pre_upgrade_backup"]?.ageSeconds == 3600)
        #expect(by["prune"]?.result == "ok" && by["prune"]?.detail == "2 removed" && by["prune"]?.ageSeconds == 60)
        #expect(by["restore"]?.result == "failed" && by["restore"]?.detail == "rollback" && by["restore"]?.exitCode == 1)
        #expect(by["copy"]?.result == "failed" && by["copy"]?.ageSeconds == 300 && by["copy"]?.detail == "maas-backup-x")
        #expect(by["verify"]?.result == "never")
        // The newest backup run (pre-upgrade) failed: exit 2, before the age bound.
        #expect(r.lastRunFailed && r.exitCode(servicesDown: false) == 2)
    }

    @Test("a config that does not load is 78, after the other codes")
    func brokenConfig() throws {
        let c = try tempConfig()
        defer { try? FileManager.default.removeItem(atPath: c.root) }
        try archive(c, hoursAgo: 1)
        let loads = report(c)
        #expect(loads.config.loads && loads.exitCode(servicesDown: false) == 0, "\(loads.config)")
        let broken = StatusCheck.run(config: nil, configPath: "/x.yaml", configError: "not valid YAML", now: Self.now)
        #expect(!broken.config.loads && broken.exitCode(servicesDown: true) == 1)
        #expect(broken.config.problems == ["not valid YAML"])
    }

    @Test("status.max_backup_age_hours parses, is range-checked and named in the error")
    func configKey() throws {
        #expect(try Config.parse(yaml: "status:\n  max_backup_age_hours: 50\n").status.maxBackupAgeHours == 50)
        #expect(Config().status.maxBackupAgeHours == 36)
        #expect(throws: BackupError.self) { try Config.parse(yaml: "status:\n  max_backup_age_hours: -1\n") }
        do { _ = try Config.parse(yaml: "status:\n  max_age: 5\n"); Issue.record("an unknown key was accepted") } catch let e as BackupError {
            #expect(e.code == .config && e.description.contains("status.max_age"), "\(e)")
        }
    }

    @Test("prune and restore gauges: success sets the success time, a failure keeps it")
    func pruneAndRestoreGauges() {
        var v: [String: Double] = [:]
        PruneMetrics.apply(code: .success, removed: 3, freedBytes: 2048, now: 100, to: &v)
        PruneMetrics.apply(code: .partial, removed: 0, freedBytes: 0, now: 200, to: &v)
        #expect(v["last_prune_success"] == 0 && v["last_prune_exit_code"] == 3 && v["last_prune_success_timestamp_seconds"] == 100, "\(v)")
        RestoreMetrics.apply(code: .success, rollback: false, seconds: 12.5, downtimeSeconds: 1.25, now: 300, to: &v)
        #expect(v["last_restore_success"] == 1 && v["last_restore_rollback"] == 0 && v["last_restore_downtime_seconds"] == 1.25)
        #expect(v["last_restore_duration_seconds"] == 12.5 && v["last_restore_success_timestamp_seconds"] == 300)
        let names = Set(MetricsFile.help.map(\.0))
        for k in v.keys { #expect(names.contains(k), "\(k) is recorded but not in the textfile") }
    }
}

/// `verify ARCHIVE --with-remote` (the weekly verify unit): the repository is checked only when
/// `remote:` is set, and even when the archive failed; the archive's failure decides the exit code.
@Suite("verify --with-remote")
struct VerifyWithRemoteTests {
    @Test("no remote: section: the archive alone, the repository is not touched")
    func withoutRemote() async throws {
        var c = Config()
        c.destination = NSTemporaryDirectory() + "/msb-vwr-\(UUID().uuidString.prefix(8))"
        c.stateDir = c.destination + "/state"
        let r = await VerifyWithRemote.run(archive: c.destination + "/missing.tar.gz", config: c, deep: false,
                                           checkRemote: { _, _ in Issue.record("checked a repository without remote:"); throw BackupError.failed("no") })
        #expect(!r.remoteChecked && r.localError != nil && r.firstError?.code == r.localError?.code)
    }

    @Test("with remote: the sample is checked even after the archive failed; the archive's code comes first, else the repository's")
    func withRemote() async throws {
        var c = try Config.parse(yaml: "remote:\n  repository: /srv/restic\n  password_file: /etc/pw\n")
        c.destination = NSTemporaryDirectory() + "/msb-vwr-\(UUID().uuidString.prefix(8))"
        c.stateDir = c.destination + "/state"
        final class Seen: @unchecked Sendable { var subset: String? }
        let seen = Seen()
        let ok = await VerifyWithRemote.run(archive: c.destination + "/missing.tar.gz", config: c, deep: false, readDataSubset: "7%",
                                            checkRemote: { _, subset in
                                                seen.subset = subset
                                                return RemoteVerifyReport(repository: "/srv/restic", readDataSubset: subset, copies: 1, storedBytes: 1, durationMs: 1)
                                            })
        #expect(seen.subset == "7%" && ok.remote?.copies == 1 && ok.remoteChecked)
        #expect(ok.localError != nil && ok.firstError?.code == ok.localError?.code, "the archive's failure decides the code")
        let bad = await VerifyWithRemote.run(archive: c.destination + "/missing.tar.gz", config: c, deep: false,
                                             checkRemote: { _, _ in throw BackupError.data("pack damaged") })
        #expect(bad.remoteError?.code == .dataError && bad.remoteChecked)
    }
}
