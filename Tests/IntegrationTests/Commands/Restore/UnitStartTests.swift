import Foundation
import MaasBackupCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Starting the stopped MAAS units unit by unit, read from systemd's own state (the stand-in
/// systemctl models units that no longer exist, a unfulfilled ConditionPathExists=, a slow start
/// and a daemon that dies).
@Suite("unit start")
struct UnitStartTests {
    /// A folder of stand-in units and a systemctl wrapper that finds them.
    final class Units {
        let dir = "/tmp/msb-units-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        var svc: String { dir + "/svc" }
        let manager: Systemctl
        init() throws {
            try FileManager.default.createDirectory(atPath: dir + "/svc", withIntermediateDirectories: true)
            let wrapper = dir + "/systemctl"
            try "#!/bin/bash\nFAKE_SYSTEMCTL_DIR=\(dir)/svc exec \(TestEnv.repo.path)/Tests/Fixtures/fake-systemctl \"$@\"\n"
                .write(toFile: wrapper, atomically: true, encoding: .utf8)
            chmod(wrapper, 0o755)
            manager = Systemctl(executable: wrapper)
        }
        func add(_ unit: String, script: String = "exec sleep 300", condition: String? = nil, delay: Double? = nil) throws {
            try "#!/bin/bash\n\(script)\n".write(toFile: "\(svc)/\(unit).sh", atomically: true, encoding: .utf8)
            chmod("\(svc)/\(unit).sh", 0o755)
            if let condition { try condition.write(toFile: "\(svc)/\(unit).condition", atomically: true, encoding: .utf8) }
            if let delay { try String(delay).write(toFile: "\(svc)/\(unit).delay", atomically: true, encoding: .utf8) }
        }
        func down(_ units: [String]) {
            _ = try? TestEnv.sh([dir + "/systemctl", "stop"] + units)
            try? FileManager.default.removeItem(atPath: dir)
        }
    }

    @Test("gone units are not started, a unit skipped by its condition is accepted, a slow unit is waited for")
    func conditionGoneAndSlow() async throws {
        let u = try Units()
        let all = ["maas-apiserver", "maas-regiond", "maas-rackd", "maas-dhcpd"]
        defer { u.down(all) }
        try u.add("maas-regiond", delay: 2)
        try u.add("maas-rackd")
        try u.add("maas-dhcpd", condition: u.dir + "/dhcpd.conf")
        // maas-apiserver has no unit file: a 3.5-only unit after a rollback to 3.4.
        let clock = Date()
        let o = try await u.manager.startAndWait(all, timeout: 20, poll: 0.2)
        let took = Date().timeIntervalSince(clock)
        #expect(o.ok, "\(o.failed)")
        #expect(o.active == ["maas-regiond", "maas-rackd"])
        #expect(o.skippedByCondition == ["maas-dhcpd"])
        #expect(o.gone == ["maas-apiserver"])
        #expect(o.startError == nil, "a gone unit must not be given to systemctl start: \(o.startError ?? "")")
        #expect(took >= 2, "the slow unit was counted active while still activating (\(took) s)")
        #expect(o.notes.count == 2 && o.notes[0].contains("maas-dhcpd") && o.notes[1].contains("maas-apiserver"), "\(o.notes)")
        let calls = (try? String(contentsOfFile: u.svc + "/calls.log", encoding: .utf8)) ?? ""
        #expect(!calls.split(separator: "\n").contains { $0.contains(" start ") && $0.contains("maas-apiserver") }, "\(calls)")
    }

    @Test("a unit that dies is a failure at once; one still activating at the deadline is a failure at the deadline, in wall-clock time")
    func failedAndTooSlow() async throws {
        let u = try Units()
        let all = ["maas-regiond", "maas-rackd"]
        defer { u.down(all) }
        // The slow unit would come up after an hour: still activating at the end proves the deadline ended the wait.
        try u.add("maas-regiond", delay: 3600)
        try u.add("maas-rackd", script: "exit 1")
        let clock = Date()
        let o = try await u.manager.startAndWait(all, timeout: 3, poll: 0.5)
        let took = Date().timeIntervalSince(clock)
        #expect(!o.ok, "\(o)")
        #expect(o.failed.map(\.unit) == ["maas-regiond", "maas-rackd"], "\(o)")
        #expect(o.failed.first { $0.unit == "maas-regiond" }?.activeState == "activating")
        #expect(o.failed.first { $0.unit == "maas-rackd" }?.activeState == "failed")
        #expect(took >= 3, "gave up after \(took) s, before the 3 s deadline")
        // The wait stops at the first poll past the deadline. Counted from the stand-in's own
        // timestamps, not from this test's clock: a loaded host (the whole suite on two cores)
        // can starve this task for minutes, and it failed CI that way (268 s for a 3 s deadline).
        let calls = ((try? String(contentsOfFile: u.svc + "/calls.log", encoding: .utf8)) ?? "")
            .split(separator: "\n").map { $0.split(separator: " ", maxSplits: 2).map(String.init) }
            .filter { $0.count >= 2 }
        let startAt = calls.first { $0[1] == "start" }.flatMap { Double($0[0]) }
        #expect(startAt != nil, "no start request in the stand-in's log")
        if let startAt {
            let late = calls.filter { $0[1] == "show" && (Double($0[0]) ?? 0) > startAt + 3 }
            #expect(late.count <= 1, "\(late.count) polls after the deadline: \(late.map { $0.joined(separator: " ") })")
        }
    }

    @Test("the one undo engine on a journal as older versions wrote it: the database state decodes, gone units leave the record")
    func undoEngineOnAnOldJournal() async throws {
        let u = try Units()
        defer { u.down(["maas-regiond", "maas-rackd"]) }
        try u.add("maas-regiond")
        try u.add("maas-rackd")
        let json = """
            {"runID":"r1","pid":1,"command":"rollback","archive":"/x","startedAt":"2026-12-01T00:00:00Z","phase":"stop services",
             "stoppedServices":["maas-regiond","maas-rackd","maas-agent"],"servicesRestarted":false,"database":"untouched",
             "swaps":[],"filesFinal":false}
            """
        let record = try JSONDecoder().decode(RestoreRecord.self, from: Data(json.utf8))
        #expect(record.database == .untouched)
        let swapping = try JSONDecoder().decode(RestoreRecord.self, from: Data(json.replacingOccurrences(of: "\"untouched\"", with: "\"swapping\"").utf8))
        #expect(swapping.database == .swapping && swapping.database.mayBeSwapped)
        let saved = Saved()
        var undo = RestoreUndo(record: record, services: u.manager, startTimeout: 10, target: { throw TestFailure("the database is untouched") },
                               save: { saved.records.append($0) }, log: { _ in })
        let o = await undo.run()
        #expect(o.done, "\(o.errors)")
        #expect(o.actions.contains("the files were not changed") && o.actions.contains("the database was not changed"), "\(o.actions)")
        #expect(o.actions.contains("started maas-regiond maas-rackd"), "\(o.actions)")
        #expect(o.actions.contains { $0.contains("maas-agent no longer exist") }, "\(o.actions)")
        #expect(undo.record.stoppedServices == ["maas-regiond", "maas-rackd"] && undo.record.servicesRestarted)
        #expect(saved.records.last?.stoppedServices == ["maas-regiond", "maas-rackd"])
        let encoded = String(decoding: try JSONEncoder().encode(undo.record), as: UTF8.self)
        #expect(encoded.contains("\"database\":\"untouched\""), "\(encoded)")
    }

    final class Saved: @unchecked Sendable { var records: [RestoreRecord] = [] }

    @Test("systemctl show's blocks are read per unit, in order")
    func parseShow() throws {
        let out = "Id=a.service\nLoadState=loaded\nActiveState=inactive\nSubState=dead\nConditionResult=no\nResult=success\n\n"
            + "Id=b.service\nLoadState=not-found\nActiveState=inactive\nSubState=dead\nConditionResult=no\nResult=success\n"
        let s = try UnitState.parse(out, units: ["a", "b"])
        #expect(s[0].skippedByCondition && s[0].exists)
        #expect(!s[1].exists)
        #expect(throws: BackupError.self) { try UnitState.parse(out, units: ["a"]) }
        // MAAS's maas-dhcpd (BindsTo= without After=) is left to maas-rackd; maas-agent (After= too) is not.
        let shown = "Id=maas-dhcpd.service\nLoadState=loaded\nActiveState=inactive\nBindsTo=maas-rackd.service\nAfter=network-online.target time-sync.target\n\n"
            + "Id=maas-agent.service\nLoadState=loaded\nActiveState=inactive\nBindsTo=maas-rackd.service\nAfter=maas-rackd.service network-online.target\n\n"
            + "Id=maas-rackd.service\nLoadState=loaded\nActiveState=inactive\nBindsTo=\nAfter=network-online.target\n"
        let units = try UnitState.parse(shown, units: ["maas-dhcpd", "maas-agent", "maas-rackd"])
        #expect(UnitState.owners(units) == ["maas-dhcpd": "maas-rackd"])
        #expect(UnitState.owners(Array(units.prefix(2))).isEmpty, "maas-rackd is not among the units started")
    }
}

/// Restore and recover on a real PostgreSQL and Btrfs with MAAS's unit shapes: maas-dhcpd with
/// ConditionPathExists=/var/lib/maas/dhcpd.conf (which real maas-rackd removes at its start and
/// writes again only once the region serves), a region slow to start, a unit whose package is gone.
@Suite("restore units", .serialized, .enabled(if: TestEnv.skipReason == nil, "\(TestEnv.skipReason ?? "")"))
struct RestoreUnitsTests {
    func svc(_ env: TestEnv) -> String { env.dir + "/svc" }

    func addDhcpd(_ env: TestEnv) throws {
        try "#!/bin/bash\nexec sleep 600\n".write(toFile: svc(env) + "/maas-dhcpd.sh", atomically: true, encoding: .utf8)
        chmod(svc(env) + "/maas-dhcpd.sh", 0o755)
        try (env.maas + "/dhcpd.conf").write(toFile: svc(env) + "/maas-dhcpd.condition", atomically: true, encoding: .utf8)
        try "subnet 10.0.0.0 netmask 255.255.255.0 {}\n".write(toFile: env.maas + "/dhcpd.conf", atomically: true, encoding: .utf8)
        let r = try TestEnv.sh([env.dir + "/bin/systemctl", "start", "maas-dhcpd"], env: env.environment)
        guard r.status == 0, try env.isActive("maas-dhcpd") else { throw TestFailure("maas-dhcpd did not start: \(r.stderr)") }
    }

    /// maas-dhcpd as MAAS ships it: BindsTo=maas-rackd.service with no After=, and
    /// ConditionPathExists=dhcpd.conf; maas-rackd's ExecStartPre deletes dhcpd.conf, and rackd
    /// writes it again and starts maas-dhcpd itself a while after its start (once the region serves).
    /// The stand-in dhcpd reads its configuration a moment after its start, so started beside rackd
    /// it loses the race to rackd's ExecStartPre and fails, as pkg-50 saw in the VM.
    func addRackOwnedDhcpd(_ env: TestEnv) throws {
        let conf = env.maas + "/dhcpd.conf"
        func write(_ name: String, _ text: String) throws {
            try text.write(toFile: svc(env) + "/" + name, atomically: true, encoding: .utf8)
            if name.hasSuffix(".sh") || name.hasSuffix(".prestart") { chmod(svc(env) + "/" + name, 0o755) }
        }
        try write("maas-dhcpd.sh", "#!/bin/bash\nsleep 1\n[ -e '\(conf)' ] || { echo 'dhcpd: no \(conf)'; exit 1; }\nexec sleep 600\n")
        try write("maas-dhcpd.condition", conf)
        try write("maas-dhcpd.bindsto", "maas-rackd")
        try write("maas-rackd.prestart", "#!/bin/bash\nrm -f '\(conf)'\n")
        let rackd = try String(contentsOfFile: svc(env) + "/maas-rackd.sh", encoding: .utf8)
        if !rackd.contains("dhcpd.conf") {
            let line = "(sleep 3; echo 'subnet 10.0.0.0 netmask 255.255.255.0 {}' > '\(conf)'; FAKE_SYSTEMCTL_DIR='\(svc(env))' '\(env.dir)/bin/systemctl' start maas-dhcpd) &\n"
            try write("maas-rackd.sh", rackd.replacingOccurrences(of: "#!/usr/bin/env bash\n", with: "#!/usr/bin/env bash\n" + line))
        }
        try "subnet 10.0.0.0 netmask 255.255.255.0 {}\n".write(toFile: conf, atomically: true, encoding: .utf8)
        let r = try TestEnv.sh([env.dir + "/bin/systemctl", "start", "maas-dhcpd"], env: env.environment)
        usleep(1_500_000)
        guard r.status == 0, try env.isActive("maas-dhcpd") else { throw TestFailure("maas-dhcpd did not start: \(r.stderr)") }
    }

    func waitActive(_ env: TestEnv, _ unit: String, seconds: Int) throws -> Bool {
        for _ in 0..<(seconds * 5) { if try env.isActive(unit) { return true }; usleep(200_000) }
        return false
    }

    @Test("maas-dhcpd, bound to maas-rackd but not ordered after it, is left to rackd by a stop backup and by a restore: neither undoes itself, and rackd brings dhcpd back")
    func dhcpdLeftToRackd() throws {
        let env = try TestEnv(name: "dhcpd-owner")
        defer { env.down() }
        let cfg = try String(contentsOfFile: env.config, encoding: .utf8)
        try (cfg + "start_timeout: 30\nquiesce: stop\n").write(toFile: env.config, atomically: true, encoding: .utf8)
        try addRackOwnedDhcpd(env)
        let b = try env.tool(["--reason", "dhcpd"])
        try #require(b.status == 0, "backup failed: \(b.stderr)")
        let archive = env.backups + "/" + (try #require(env.archives().last))
        #expect(b.stderr.contains("maas-dhcpd is left to maas-rackd"), "\(b.stderr)")
        #expect(try waitActive(env, "maas-dhcpd", seconds: 30), "rackd did not bring maas-dhcpd back after the backup")

        let r = try env.tool(["restore", archive, "--yes", "--json"])
        #expect(r.status == 0, "restore failed: \(r.stdout) \(r.stderr)")
        let j = RT.json(r)
        let left = j["services_left_to_owner"] as? [[String: Any]] ?? []
        #expect(left.count == 1 && left.first?["unit"] as? String == "maas-dhcpd" && left.first?["owner"] as? String == "maas-rackd", "\(r.stdout)")
        #expect((j["services_started"] as? [String])?.sorted() == ["maas-rackd", "maas-regiond"], "\(r.stdout)")
        #expect(try waitActive(env, "maas-dhcpd", seconds: 30), "rackd did not bring maas-dhcpd back after the restore")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: env.dir + "/state/restores")) ?? []).isEmpty)
        // The tool never started maas-dhcpd beside maas-rackd: each start of maas-dhcpd was rackd's own.
        let calls = (try? String(contentsOfFile: svc(env) + "/calls.log", encoding: .utf8)) ?? ""
        let together = calls.split(separator: "\n").filter { $0.contains(" start ") && $0.contains("maas-dhcpd") && $0.contains("maas-rackd") }
        #expect(together.isEmpty, "\(together)")
    }

    @Test("restore accepts maas-dhcpd left inactive by its condition and waits for a slow region; recover skips a unit that no longer exists")
    func dhcpdConditionAndGoneUnit() throws {
        let env = try TestEnv(name: "units")
        defer { env.down() }
        let cfg = try String(contentsOfFile: env.config, encoding: .utf8)
        try (cfg + "start_timeout: 30\n").write(toFile: env.config, atomically: true, encoding: .utf8)
        let b = try env.tool(["--json", "--reason", "units"])
        try #require(b.status == 0, "backup failed: \(b.stderr)")
        let archive = try #require(RT.json(b)["archive"] as? String)

        // After the backup: DHCP configured (dhcpd.conf is not in the archive) and a region that takes 3 s.
        try addDhcpd(env)
        try "3".write(toFile: svc(env) + "/maas-regiond.delay", atomically: true, encoding: .utf8)
        let r = try env.tool(["restore", archive, "--yes", "--json"])
        #expect(r.status == 0, "restore failed: \(r.stderr)")
        let j = RT.json(r)
        #expect((j["services_started"] as? [String])?.sorted() == ["maas-rackd", "maas-regiond"], "\(r.stdout)")
        #expect(j["services_inactive_by_condition"] as? [String] == ["maas-dhcpd"], "\(r.stdout)")
        #expect(try env.isActive("maas-regiond") && env.isActive("maas-rackd"))
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: env.dir + "/state/restores")) ?? []).isEmpty)
        try? FileManager.default.removeItem(atPath: svc(env) + "/maas-regiond.delay")

        // A restore killed with the services stopped; then maas-dhcpd's package goes away.
        try addDhcpd(env)
        let marker = env.dir + "/units-marker"
        let pid = try env.start(["restore", archive, "--yes"], env: ["MSB_TEST_PAUSE_AFTER": "restore-stop", "MSB_TEST_PAUSE_MARKER": marker])
        for _ in 0..<600 where !FileManager.default.fileExists(atPath: marker) { usleep(100_000) }
        try #require(FileManager.default.fileExists(atPath: marker), "the restore did not reach restore-stop")
        kill(pid, SIGKILL)
        _ = TestEnv.wait(pid)
        try FileManager.default.removeItem(atPath: svc(env) + "/maas-dhcpd.sh")
        let rec = try env.tool(["recover", "--json"])
        #expect(rec.status == 0, "\(rec.stdout) \(rec.stderr)")
        #expect(RT.json(rec)["status"] as? String == "ok", "\(rec.stdout)")
        #expect(rec.stdout.contains("maas-dhcpd no longer exist"), "\(rec.stdout)")
        #expect(try env.isActive("maas-regiond") && env.isActive("maas-rackd"))
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: env.dir + "/state/restores")) ?? []).isEmpty)
    }
}
