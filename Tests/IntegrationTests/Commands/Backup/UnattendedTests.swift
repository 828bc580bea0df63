import Foundation
import MaasBackupCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Running unattended: the retention after every backup, a pre-upgrade backup that prunes first when
/// the destination is short of space, and the metrics textfile written on every run, failed ones too.
@Suite(.serialized, .enabled(if: TestEnv.skipReason == nil, "\(TestEnv.skipReason ?? "")"))
final class UnattendedTests {
    let env: TestEnv

    init() throws { env = try TestEnv(name: "unattended") }
    deinit { env.down() }

    /// The environment's config with `extra` YAML appended; the top-level keys `extra` sets replace the
    /// environment's (the test env turns the retention after backups off).
    func config(_ name: String, _ extra: String) throws -> String {
        let keys = extra.split(separator: "\n").filter { !$0.hasPrefix(" ") }.map { $0.prefix { $0 != ":" } }
        var base: [Substring] = [], dropping = false
        for line in try String(contentsOfFile: env.config, encoding: .utf8).split(separator: "\n") {
            if !line.hasPrefix(" ") { dropping = keys.contains(line.prefix { $0 != ":" }) }
            if !dropping { base.append(line) }
        }
        let path = env.dir + "/config-\(name).yaml"
        try (base.joined(separator: "\n") + "\n" + extra + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func metrics(_ path: String) throws -> [String: Double] {
        var out: [String: Double] = [:]
        for line in try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n") where !line.hasPrefix("#") {
            let p = line.split(separator: " ")
            if p.count == 2 { out[String(p[0].replacingOccurrences(of: "maas_snapshot_backup_", with: ""))] = Double(p[1]) }
        }
        return out
    }

    @Test("every backup applies the retention; the metrics textfile records successes and failures, keeping the last success's figures")
    func retentionAndMetrics() throws {
        let textfile = env.dir + "/metrics.prom"
        let cfg = try config("keep2", "retention:\n  keep: 2\nmetrics_textfile: \(textfile)")
        var removedOnThird = -1
        for i in 1...3 {
            let r = try env.tool(["--json"], config: cfg)
            #expect(r.status == 0, "backup \(i): \(r.stderr)")
            let j = RT.json(r)
            let removed = ((j["pruned"] as? [String: Any])?["removed"] as? [Any])?.count ?? -1
            if i < 3 { #expect(removed == 0, "backup \(i) removed \(removed)") } else { removedOnThird = removed }
        }
        #expect(removedOnThird == 1)
        #expect(env.archives().count == 2, "\(env.archives())")
        var m = try metrics(textfile)
        #expect(m["last_run_success"] == 1 && m["last_run_exit_code"] == 0 && m["pruned_archives"] == 1, "\(m)")
        let success = try #require(m["last_success_timestamp_seconds"])
        let bytes = try #require(m["archive_bytes"])
        #expect(success > 1_700_000_000 && bytes > 0 && m["last_failure_timestamp_seconds"] == 0, "\(m)")
        // Per kind: these were not pre-upgrade backups. Durations in seconds.
        #expect(m["last_scheduled_success_timestamp_seconds"] == success && m["last_pre_upgrade_success_timestamp_seconds"] == 0, "\(m)")
        #expect((m["duration_seconds"] ?? 0) > 0 && (m["duration_seconds"] ?? 0) < 600 && m["downtime_seconds"] != nil, "\(m)")
        let attrs = try FileManager.default.attributesOfItem(atPath: textfile)
        #expect((attrs[.posixPermissions] as? Int) == 0o644)

        // A failed run: success 0, its exit code, a failure time; the last success's figures stay.
        sleep(1)
        let f = try env.tool(["--json"], env: ["MSB_TEST_FAIL_AFTER": "stop"], config: cfg)
        #expect(f.status == 1, "\(f.stderr)")
        m = try metrics(textfile)
        #expect(m["last_run_success"] == 0 && m["last_run_exit_code"] == 1, "\(m)")
        #expect((m["last_failure_timestamp_seconds"] ?? 0) > success, "\(m)")
        #expect(m["last_success_timestamp_seconds"] == success && m["archive_bytes"] == bytes, "\(m)")
        #expect(env.archives().count == 2)
        // A run refused in preflight counts too (pg_dump's folder missing: 69).
        let bad = try config("bad-bin", "metrics_textfile: \(textfile)")
        let text = try String(contentsOfFile: bad, encoding: .utf8)
            .replacingOccurrences(of: "  os_user: root", with: "  os_user: root\n  bin_dir: /nonexistent")
        try text.write(toFile: bad, atomically: true, encoding: .utf8)
        let p = try env.tool(["--json"], config: bad)
        #expect(p.status == 69, "exit \(p.status): \(p.stderr)")
        m = try metrics(textfile)
        #expect(m["last_run_success"] == 0 && m["last_run_exit_code"] == 69 && m["last_success_timestamp_seconds"] == success, "\(m)")
    }

    @Test("a pre-upgrade backup short of space removes what the retention would remove first and says so; a manual one is refused (73)")
    func preUpgradePrunesWhenShort() throws {
        // The estimate and an archive's size, from a dry run and a backup into the usual destination.
        let dry = RT.json(try env.tool(["--json", "--dry-run"]))
        let estimate = try #require((dry["plan"] as? [String: Any])?["estimated_bytes"] as? Int)
        let first = try env.tool(["--json"])
        #expect(first.status == 0, "\(first.stderr)")
        let archive = try #require(RT.json(first)["archive"] as? String)
        let size = Int((try FileManager.default.attributesOfItem(atPath: archive)[.size] as? NSNumber)?.intValue ?? 0)
        // A small destination holding two older backups: room for the estimate only once one of them is gone.
        let dest = env.dir + "/small-dest"
        try FileManager.default.createDirectory(atPath: dest, withIntermediateDirectories: true)
        let tmpfsSize = (estimate + size + size / 2 + 4095) / 4096 * 4096
        #expect(try TestEnv.sh(["mount", "-t", "tmpfs", "-o", "size=\(tmpfsSize),mode=0700", "tmpfs", dest]).status == 0)
        defer { _ = try? TestEnv.sh(["umount", dest]) }
        for (n, stamp) in ["20200101T000000Z", "20200102T000000Z"].enumerated() {
            let name = "maas-backup-old\(n)-\(stamp).tar.gz"
            try FileManager.default.copyItem(atPath: archive, toPath: dest + "/" + name)
            var m = try RT.manifest(sidecarOf: archive)
            m.createdAt = "2020-01-0\(n + 1)T00:00:00Z"
            try Data(try m.encoded()).write(to: URL(fileURLWithPath: dest + "/" + name + ".manifest.json"))
        }
        let cfg = try config("small", "destination: \(dest)\nretention:\n  keep: 1\n  after_backup: false")
        let manual = try env.tool(["--json"], config: cfg)
        #expect(manual.status == 73, "exit \(manual.status): \(manual.stderr)")
        #expect(env.archives().count >= 1)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dest).filter { $0.hasSuffix(".tar.gz") }.count == 2)

        let pre = try env.tool(["--reason", "pre-upgrade maas-region-controller 1:3.4.0 -> 1:3.5.0"], config: cfg)
        #expect(pre.status == 0, "exit \(pre.status): \(pre.stderr)")
        #expect(pre.stderr.contains("not enough free space") && pre.stderr.contains("maas-backup-old0-20200101T000000Z.tar.gz"), "\(pre.stderr)")
        let left = try FileManager.default.contentsOfDirectory(atPath: dest).filter { $0.hasSuffix(".tar.gz") }.sorted()
        #expect(left.count == 2 && left.contains("maas-backup-old1-20200102T000000Z.tar.gz") && !left.contains("maas-backup-old0-20200101T000000Z.tar.gz"), "\(left)")
        #expect(!FileManager.default.fileExists(atPath: dest + "/maas-backup-old0-20200101T000000Z.tar.gz.manifest.json"))
    }

    @Test("on the journal (JOURNAL_STREAM names stderr) each line carries its syslog priority; elsewhere lines are as they were")
    func journalPriorities() throws {
        // bash sets JOURNAL_STREAM to its own stderr's device:inode (the test's pipe), as systemd does for a unit.
        let script = "JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec \"$@\""
        let r = try TestEnv.sh(["bash", "-c", script, "bash", TestEnv.binary, "--config", env.config],
                               env: env.environment.merging(["MSB_TEST_FAIL_AFTER": "stop"]) { $1 })
        #expect(r.status == 1, "\(r.stderr)")
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.contains { $0.hasPrefix("<6>preflight passed") }, "\(r.stderr)")
        #expect(lines.contains { $0.hasPrefix("<3>maas-snapshot-backup: error: ") && $0.contains("injected failure") }, "\(r.stderr)")
        #expect(lines.allSatisfy { $0.hasPrefix("<") }, "\(r.stderr)")
        // A JOURNAL_STREAM that names another stream (inherited from a parent) is ignored.
        let other = try env.tool(["--json"], env: ["MSB_TEST_FAIL_AFTER": "stop", "JOURNAL_STREAM": "1:1"])
        #expect(other.status == 1 && !other.stderr.contains("<3>") && other.stderr.contains("maas-snapshot-backup: error: "), "\(other.stderr)")
    }

    @Test("-q prints errors only, -v every step of the window with its time; both at once is a usage error")
    func quietAndVerbose() throws {
        let script = "JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec \"$@\""
        let verbose = try TestEnv.sh(["bash", "-c", script, "bash", TestEnv.binary, "--config", env.config, "-v"], env: env.environment)
        #expect(verbose.status == 0, "\(verbose.stderr)")
        let steps = verbose.stderr.split(separator: "\n").filter { $0.hasPrefix("<7>step ") }
        #expect(steps.contains { $0.hasPrefix("<7>step prepare") } && steps.contains { $0.contains(" ms") }, "\(verbose.stderr)")
        #expect(verbose.stderr.contains("<6>preflight passed"), "\(verbose.stderr)")
        let normal = try env.tool([])
        #expect(normal.status == 0 && !normal.stderr.contains("step ") && normal.stderr.contains("preflight passed"), "\(normal.stderr)")
        let quiet = try env.tool(["-q"])
        #expect(quiet.status == 0 && quiet.stderr.isEmpty, "-q printed: \(quiet.stderr)")
        #expect(quiet.stdout.contains("Backup written:"), "the result still goes to stdout")
        let failed = try env.tool(["list", "--quiet"], config: env.dir + "/no-such-config.yaml")
        #expect(failed.status == 78 && failed.stderr.contains("maas-snapshot-backup: error: "), "-q keeps the errors: \(failed.stderr)")
        let both = try env.tool(["status", "-q", "-v"])
        #expect(both.status == 64 && both.stderr.contains("not both"), "\(both.stderr)")
    }

    @Test("--after-boot: a run soon after boot waits until the system has been up that long, then goes on")
    func afterBoot() throws {
        let up = try #require(Double(try String(contentsOfFile: "/proc/uptime", encoding: .utf8).split(separator: " ")[0]))
        let t0 = Date()
        let r = try env.tool(["--after-boot", String(Int(up) + 4)], env: ["MSB_TEST_FAIL_AFTER": "stop"])
        let took = Date().timeIntervalSince(t0)
        #expect(r.status == 1 && r.stderr.contains("injected failure"), "\(r.stderr)")
        #expect(r.stderr.contains("waiting") && r.stderr.contains("--after-boot"), "\(r.stderr)")
        #expect(took >= 2.5, "it did not wait: \(took) s")
        let quick = try env.tool(["--after-boot", "1"], env: ["MSB_TEST_FAIL_AFTER": "stop"])
        #expect(quick.status == 1 && !quick.stderr.contains("waiting"), "\(quick.stderr)")
    }
}
