import Foundation
import MaasBackupCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// quiesce (issue 15): MAAS frozen through the cgroup freezer instead of stopped. The stand-in
/// systemctl freezes a unit with SIGSTOP of its process group and thaws it with SIGCONT; this suite
/// gives it what the probe wants (a cgroup v2 file, a listening "system bus"), and takes it away
/// with FAKE_SYSTEMCTL_NO_FREEZE=1.
@Suite(.serialized, .enabled(if: TestEnv.skipReason == nil, "\(TestEnv.skipReason ?? "")"))
final class FreezeTests {
    let env: TestEnv
    let busFD: Int32

    init() throws {
        env = try TestEnv(name: "freeze")
        _ = FileManager.default.createFile(atPath: env.dir + "/cgroup.controllers", contents: Data("cpu io memory pids\n".utf8))
        // A listening unix socket stands in for the D-Bus system bus: the probe only connects.
        busFD = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let path = Array((env.dir + "/bus").utf8)
        withUnsafeMutableBytes(of: &addr.sun_path) { b in for (i, c) in path.enumerated() { b[i] = c } }
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(busFD, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0 }
        } && listen(busFD, 64) == 0
        guard ok else { throw TestFailure("cannot make the stand-in system bus: \(Errno.last.description)") }
    }

    deinit {
        close(busFD)
        env.down()
    }

    /// Freezing possible (plus `extra`).
    func freezable(_ extra: [String: String] = [:]) -> [String: String] {
        var e = ["MSB_TEST_CGROUP_CONTROLLERS": env.dir + "/cgroup.controllers",
                 "DBUS_SYSTEM_BUS_ADDRESS": "unix:path=" + env.dir + "/bus"]
        for (k, v) in extra { e[k] = v }
        return e
    }

    var calls: String { (try? String(contentsOfFile: env.dir + "/svc/calls.log", encoding: .utf8)) ?? "" }
    /// The verbs systemctl was called with since `mark` (a length of calls.log).
    func verbs(since mark: Int) -> [String] {
        String(calls.dropFirst(mark)).split(separator: "\n").compactMap { $0.split(separator: " ").dropFirst().first.map(String.init) }
    }

    func pid(_ unit: String) throws -> pid_t {
        pid_t(try String(contentsOfFile: env.dir + "/svc/\(unit).pid", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    /// The process state letter from /proc/PID/stat ("S", "R", "T" stopped, ...), nil when gone.
    func state(_ pid: pid_t) -> String? {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = s.range(of: ")", options: .backwards) else { return nil }
        return s[close.upperBound...].split(separator: " ").first.map(String.init)
    }

    func freezerState(_ unit: String) throws -> String {
        try TestEnv.sh([env.dir + "/bin/systemctl", "show", "-p", "FreezerState", "--value", unit], env: env.environment)
            .stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Both stand-in daemons run, are not stopped by a signal, and say FreezerState=running.
    func thawed() throws -> Bool {
        try ["maas-regiond", "maas-rackd"].allSatisfy { u in
            let p = try pid(u)
            return try env.isActive(u) && state(p) != nil && state(p) != "T" && freezerState(u) == "running"
        }
    }

    func waitThawed(within seconds: Double) throws -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if try thawed() { return true }
            usleep(100_000)
        }
        return false
    }

    static func json(_ r: TestEnv.Result) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]) ?? [:]
    }

    func extract(_ archive: String) throws -> String {
        let out = env.dir + "/extract-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        #expect(try TestEnv.sh(["tar", "-xzf", archive, "-C", out]).status == 0)
        return out
    }

    /// The counter value in dump.sql's COPY of msb_counter.
    func dumpCounter(_ dir: String) throws -> Int? {
        let text = try String(contentsOfFile: dir + "/dump.sql", encoding: .utf8)
        guard let r = text.range(of: "COPY public.msb_counter (service, n) FROM stdin;\n") else { return nil }
        let rows = text[r.upperBound...].prefix { $0 != "\\" }.split(separator: "\n")
        return rows.first { $0.hasPrefix("maas-regiond\t") }?.split(separator: "\t").last.flatMap { Int($0) }
    }

    func startPaused(at step: String, seconds: Int = 60) throws -> pid_t {
        try env.startPaused(at: step, seconds: seconds, args: ["--quiesce", "auto"], env: freezable())
    }

    func wait(_ pid: pid_t) -> Int32 { TestEnv.wait(pid) }

    @Test("quiesce auto freezes: same PIDs, freeze and thaw but no stop or start, the manifest says freeze, one instant")
    func autoFreezes() throws {
        let before = try pid("maas-regiond"), rackBefore = try pid("maas-rackd")
        let mark = calls.count
        let r = try env.tool(["--json", "--quiesce", "auto"], env: freezable())
        #expect(r.status == 0, "backup failed: \(r.stderr)")
        let json = Self.json(r)
        #expect(json["quiesce"] as? String == "freeze")
        #expect((json["services_frozen"] as? [String])?.sorted() == ["maas-rackd", "maas-regiond"])
        #expect((json["services_stopped"] as? [String]) == [])
        let steps = (json["window"] as? [[String: Any]] ?? []).compactMap { $0["step"] as? String }
        #expect(steps.contains("freeze_services") && steps.contains("thaw_services") && !steps.contains("stop_services"), "\(steps)")
        #expect(steps.contains { $0.hasPrefix("sync ") }, "the volume is synced before the window: \(steps)")
        #expect((json["downtime_ms"] as? Double ?? 0) > 0)

        #expect(try pid("maas-regiond") == before && pid("maas-rackd") == rackBefore, "a frozen unit keeps its process")
        #expect(try thawed())
        let v = verbs(since: mark)
        #expect(v.contains("freeze") && v.contains("thaw"), "\(v)")
        #expect(!v.contains("stop") && !v.contains("start"), "a freeze must not stop or start a unit: \(v)")
        #expect(v.firstIndex(of: "freeze")! < v.firstIndex(of: "thaw")!)

        let x = try extract(try #require(json["archive"] as? String))
        let m = try Manifest.decode(Array(try Data(contentsOf: URL(fileURLWithPath: x + "/manifest.json"))))
        #expect(m.window.quiesce == "freeze")
        #expect(m.window.servicesFrozen?.sorted() == ["maas-rackd", "maas-regiond"])
        #expect(m.window.servicesStopped.isEmpty)
        // Crash-consistent: the stand-in commits, then writes the file; frozen between the two, the
        // file lags the database by one, never leads it.
        let file = try #require(Int(try String(contentsOfFile: x + "/var/lib/maas/counter", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        let db = try #require(try dumpCounter(x))
        #expect(file == db || file == db - 1, "file counter \(file), database counter \(db)")

        // The daemon writes again after the thaw.
        let c1 = try env.liveCounter()
        var later = c1
        for _ in 0..<100 where later <= c1 { usleep(100_000); later = try env.liveCounter() }
        #expect(later > c1, "the stand-in regiond stopped writing after the thaw")
    }

    @Test("quiesce freeze where freezing is unsupported: one clear line, exit 69, nothing changed")
    func freezeRefusedWhenUnsupported() throws {
        let before = try pid("maas-regiond")
        let mark = calls.count
        let r = try env.tool(["--quiesce", "freeze"], env: freezable(["FAKE_SYSTEMCTL_NO_FREEZE": "1"]))
        #expect((r.status) == 69, "status \(r.status): \(r.stderr)")
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].contains("cannot be frozen") && lines[0].contains("FreezerState"), "\(r.stderr)")
        let v = verbs(since: mark)
        #expect(!v.contains("freeze") && !v.contains("stop") && !v.contains("start"), "\(v)")
        #expect(try pid("maas-regiond") == before)
        #expect(env.archives().isEmpty)
        #expect(env.leftovers().isEmpty, "\(env.leftovers())")

        // The same from the config file, and without a system bus.
        let cfg = env.dir + "/config-freeze.yaml"
        try (try String(contentsOfFile: env.config, encoding: .utf8) + "quiesce: freeze\n").write(toFile: cfg, atomically: true, encoding: .utf8)
        let nobus = try env.tool(["--dry-run"], env: freezable(["DBUS_SYSTEM_BUS_ADDRESS": "unix:path=" + env.dir + "/no-bus"]), config: cfg)
        #expect(nobus.status == 69 && nobus.stderr.contains("system bus"), "\(nobus.status): \(nobus.stderr)")
    }

    @Test("quiesce auto where freezing is unsupported: the plan says stop and why, and the backup stops")
    func autoFallsBackToStop() throws {
        let dry = try env.tool(["--dry-run", "--json"], env: freezable(["FAKE_SYSTEMCTL_NO_FREEZE": "1"]))
        #expect(dry.status == 0, "\(dry.stderr)")
        let plan = Self.json(dry)["plan"] as? [String: Any] ?? [:]
        #expect(plan["quiesce"] as? String == "stop")
        #expect((plan["quiesce_reason"] as? String ?? "").contains("FreezerState"), "\(plan["quiesce_reason"] ?? "nil")")
        #expect((plan["services_to_stop"] as? [String])?.sorted() == ["maas-rackd", "maas-regiond"])
        // Freezable: the plan says freeze.
        let yes = Self.json(try env.tool(["--dry-run", "--json"], env: freezable()))["plan"] as? [String: Any] ?? [:]
        #expect(yes["quiesce"] as? String == "freeze" && (yes["services_to_freeze"] as? [String])?.count == 2, "\(yes)")
        // An old systemd: stop, naming the version.
        let old = Self.json(try env.tool(["--dry-run", "--json"], env: freezable(["FAKE_SYSTEMCTL_VERSION": "245"])))["plan"] as? [String: Any] ?? [:]
        #expect(old["quiesce"] as? String == "stop" && (old["quiesce_reason"] as? String ?? "").contains("245"), "\(old)")

        // --snapshot none holds MAAS for the whole run: stopped, never frozen.
        let none = Self.json(try env.tool(["--dry-run", "--json", "--snapshot", "none"], env: freezable()))["plan"] as? [String: Any] ?? [:]
        #expect(none["quiesce"] as? String == "stop" && (none["quiesce_reason"] as? String ?? "").contains("snapshot none"), "\(none)")
        let noneFreeze = try env.tool(["--dry-run", "--snapshot", "none", "--quiesce", "freeze"], env: freezable())
        #expect(noneFreeze.status == 78 && noneFreeze.stderr.contains("whole run"), "\(noneFreeze.status): \(noneFreeze.stderr)")

        let mark = calls.count
        let r = try env.tool(["--json"], env: freezable(["FAKE_SYSTEMCTL_NO_FREEZE": "1"]))
        #expect(r.status == 0, "\(r.stderr)")
        let json = Self.json(r)
        #expect(json["quiesce"] as? String == "stop")
        #expect((json["services_stopped"] as? [String])?.sorted() == ["maas-rackd", "maas-regiond"])
        let v = verbs(since: mark)
        #expect(v.contains("stop") && v.contains("start") && !v.contains("freeze"), "\(v)")
        #expect(try env.isActive("maas-regiond") && env.isActive("maas-rackd"))
    }

    @Test("a failure inside the frozen window thaws the units and cleans up")
    func failureInWindowThaws() throws {
        let before = try pid("maas-regiond")
        let r = try env.tool(["--quiesce", "freeze"], env: freezable(["MSB_TEST_FAIL_AFTER": "snapshot"]))
        #expect(r.status == 1, "status \(r.status): \(r.stderr)")
        #expect(r.stderr.contains("injected failure"))
        let after = try pid("maas-regiond")
        #expect(try thawed(), "units left frozen: regiond state \(state(after) ?? "gone")")
        #expect(after == before)
        #expect(calls.contains(" thaw "))
        #expect(env.archives().isEmpty)
        #expect(env.leftovers().isEmpty, "\(env.leftovers())")
    }

    @Test("SIGTERM while frozen: the window ends at once, the units thaw, the run cleans up", arguments: [SIGTERM, SIGINT])
    func signalWhileFrozenThaws(signal: Int32) throws {
        let pid = try startPaused(at: "freeze")
        // Really frozen: the daemon is stopped by the stand-in freezer while the run pauses.
        #expect(state(try self.pid("maas-regiond")) == "T", "not frozen in the window")
        #expect(try freezerState("maas-regiond") == "frozen")
        let t = Date()
        kill(pid, signal)
        let status = wait(pid)
        #expect(status & 0x7f == 0 && (status >> 8) & 0xff == 1, "status \(status)")
        #expect(Date().timeIntervalSince(t) < 20, "the run took \(Date().timeIntervalSince(t)) s to stop")
        #expect(try thawed())
        #expect(env.archives().isEmpty)
        #expect(env.leftovers().isEmpty, "\(env.leftovers())")
    }

    @Test("SIGKILL while frozen: the guard thaws; status lists the frozen units; recover thaws and cleans")
    func sigkillWhileFrozen() throws {
        let mark = calls.count
        let pid = try startPaused(at: "snapshot")
        #expect(state(try self.pid("maas-regiond")) == "T", "not frozen in the window")
        kill(pid, SIGKILL)
        _ = wait(pid)
        #expect(try waitThawed(within: 30), "the dead-man guard did not thaw the units")
        let v = verbs(since: mark)
        #expect(v.contains("thaw") && !v.contains("start"), "the guard must thaw, not start: \(v)")

        let st = try env.tool(["status", "--json"])
        let left = (Self.json(st)["leftovers"] as? [[String: Any]]) ?? []
        #expect(left.count == 1 && (left.first?["services_still_frozen"] as? [String])?.sorted() == ["maas-rackd", "maas-regiond"], "\(st.stdout)")
        let text = try env.tool(["status"])
        #expect(text.stdout.contains("services frozen: maas-regiond maas-rackd"), "\(text.stdout)")

        let rec = try env.tool(["recover", "--json"])
        #expect(rec.status == 0, "\(rec.stderr)")
        #expect(rec.stdout.contains("thawed maas-regiond maas-rackd"), "\(rec.stdout)")
        #expect(try thawed())
        #expect(env.leftovers().isEmpty, "\(env.leftovers())")
    }
}

extension FreezeTests {
    @Test("every thaw fails: the journal and the guard stay; status exits 1 naming the units; recover thaws them (issue 23)")
    func failedThawIsLeftForRecover() throws {
        let r = try env.tool(["--quiesce", "freeze"], env: freezable(["MSB_TEST_FAIL_AFTER": "snapshot", "FAKE_SYSTEMCTL_THAW_FAILS": "1"]))
        #expect(r.status == 1, "status \(r.status): \(r.stderr)")
        #expect(r.stderr.contains("CRITICAL") && r.stderr.contains("recover"), "\(r.stderr)")
        #expect(try freezerState("maas-regiond") == "frozen", "the stand-in thaw was meant to fail")
        #expect(!env.leftovers().isEmpty, "the journal was removed with the units still frozen")

        let st = try env.tool(["status", "--json"])
        #expect(st.status == 1, "status must fail while units are frozen: \(st.status)")
        let left = (Self.json(st)["leftovers"] as? [[String: Any]]) ?? []
        #expect(left.count == 1 && (left.first?["services_still_frozen"] as? [String])?.sorted() == ["maas-rackd", "maas-regiond"], "\(st.stdout)")
        let text = try env.tool(["status"])
        #expect(text.status == 1 && text.stdout.contains("services frozen: maas-regiond maas-rackd"), "\(text.stdout)")

        let rec = try env.tool(["recover", "--json"])
        #expect(rec.status == 0, "\(rec.stderr)")
        #expect(rec.stdout.contains("thawed maas-regiond maas-rackd"), "\(rec.stdout)")
        #expect(try thawed())
        #expect(env.leftovers().isEmpty, "\(env.leftovers())")
        // MAAS runs again; the last backup run failed, which status still reports (exit 2) until a backup succeeds.
        let after = try env.tool(["status"])
        #expect(after.status == 2 && after.stdout.contains("failed (exit 1)"), "\(after.status): \(after.stdout)")
        #expect(try env.tool(["--quiesce", "freeze"], env: freezable([:])).status == 0)
        #expect(try env.tool(["status"]).status == 0)
    }
}
