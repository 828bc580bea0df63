import Foundation
import MSBKit
import SystemPackage
import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// Starts the stopped services again (thaws the frozen ones) if this process dies inside the
/// window, or if the window overruns its timeout. It is a child process of ours in its own session (`maas-snapshot-backup
/// guard`), holding the read end of a pipe: EOF without "disarm" means we died. On a systemd host
/// a transient timer (systemd-run) backs it up, since a killed service's cgroup takes the child too.
public final class DeadManGuard: @unchecked Sendable {
    private var writeFD: Int32 = -1
    private var task: Task<Void, Never>?
    private var timerUnit: String?

    /// Arms the guard; call before stopping (`thaw`: freezing) anything.
    public static func arm(executable: String, services: [String], thaw: Bool = false, timeoutSeconds: Int, runID: String) async throws -> DeadManGuard {
        let g = DeadManGuard()
        // A guard that died already must make disarm's write fail with EPIPE, not kill this run.
        signal(SIGPIPE, SIG_IGN)
        var fds: [Int32] = [0, 0]
        guard pipe2(&fds, O_CLOEXEC) == 0 else {
            throw BackupError.failed("cannot create the guard's pipe: \(Errno.last.description)")
        }
        g.writeFD = fds[1]
        let readFD = FileDescriptor(rawValue: fds[0])
        // The guard says "ready" on its stdout once it watches the pipe: until then nothing may
        // be stopped (a run killed before the guard exists would leave MAAS down).
        var ready: [Int32] = [0, 0]
        guard pipe2(&ready, O_CLOEXEC) == 0 else {
            close(fds[0]); close(fds[1]); g.writeFD = -1
            throw BackupError.failed("cannot create the guard's pipe: \(Errno.last.description)")
        }
        let readyWrite = FileDescriptor(rawValue: ready[1])
        let args = ["guard", "--timeout", String(timeoutSeconds)] + (thaw ? ["--thaw"] : []) + ["--"] + services
        g.task = Task.detached {
            _ = try? await Command.runDetachedChild(executable, args, stdin: readFD, stdout: readyWrite)
        }
        let started = (try? await Blocking.run { () -> Bool in
            defer { close(ready[0]) }
            var pfd = pollfd(fd: ready[0], events: Int16(POLLIN), revents: 0)
            var got = [UInt8]()
            let deadline = Date().addingTimeInterval(30)
            while !String(decoding: got, as: UTF8.self).contains("ready") {
                let left = Int32(max(0, deadline.timeIntervalSinceNow * 1000))
                let r = poll(&pfd, 1, left)
                if r < 0 && errno == EINTR { continue }
                if r <= 0 { return false }
                var buf = [UInt8](repeating: 0, count: 16)
                let n = read(ready[0], &buf, buf.count)
                if n <= 0 { return false }  // the guard exited (or was never started)
                got += buf[0..<n]
            }
            return true
        }) ?? false
        guard started else {
            await g.disarm()
            throw BackupError.failed("the dead-man guard (\(executable) guard) did not start; nothing was stopped",
                                     hint: "check that \(executable) can run")
        }
        // Backup for a cgroup kill: a transient systemd timer, where systemd runs.
        if FileManager.default.fileExists(atPath: "/run/systemd/system"), let run = Command.find("systemd-run"),
           let ctl = Command.find("systemctl") {
            let unit = "maas-snapshot-backup-guard-\(runID)"
            let r = try await Command.run(run, ["--quiet", "--on-active=\(timeoutSeconds + 30)", "--unit=\(unit)",
                                                "--description=maas-snapshot-backup dead-man guard", ctl, Self.verb(thaw: thaw), "--"] + services)
            if r.succeeded { g.timerUnit = unit }
        }
        return g
    }

    /// The systemd-run timer a killed run `runID` left armed (it would still start or thaw the
    /// services later): stopped by `recover`. Nothing where systemd does not run.
    public static func cancelTimer(runID: String) async {
        guard FileManager.default.fileExists(atPath: "/run/systemd/system"), let ctl = Command.find("systemctl") else { return }
        _ = try? await Command.run(ctl, ["stop", "--", "maas-snapshot-backup-guard-\(runID).timer"])
    }

    /// The services are running again: stand down.
    public func disarm() async {
        if writeFD >= 0 {
            _ = "disarm\n".withCString { write(writeFD, $0, 7) }
            close(writeFD)
            writeFD = -1
        }
        await task?.value
        if let unit = timerUnit, let ctl = Command.find("systemctl") {
            _ = try? await Command.run(ctl, ["stop", "--", unit + ".timer"])
            timerUnit = nil
        }
    }

    /// What brings the services back: `start` after a stop, `thaw` after a freeze (a thaw of a
    /// unit that is not frozen is harmless).
    static package func verb(thaw: Bool) -> String { thaw ? "thaw" : "start" }

    /// The guard process's own loop: wait for "disarm", EOF, or the timeout.
    public static func runGuard(services: [String], thaw: Bool = false, timeoutSeconds: Int) async -> Int32 {
        _ = "ready\n".withCString { write(1, $0, 6) }
        let null = open("/dev/null", O_WRONLY)  // the run stops reading: nothing more goes there
        if null >= 0 { dup2(null, 1); close(null) }
        var pfd = pollfd(fd: 0, events: Int16(POLLIN), revents: 0)
        let deadline = Date().addingTimeInterval(Double(timeoutSeconds))
        var got = [UInt8]()
        while true {
            let left = Int32(max(0, deadline.timeIntervalSinceNow * 1000))
            let r = poll(&pfd, 1, left)
            if r == 0 { break }  // timeout: the window overran
            if r < 0 { if errno == EINTR { continue }; break }
            var buf = [UInt8](repeating: 0, count: 64)
            let n = read(0, &buf, 64)
            if n > 0 { got += buf[0..<n]; if String(decoding: got, as: UTF8.self).contains("disarm") { return 0 } ; continue }
            break  // EOF: the run died
        }
        FileHandle.standardError.write(Data("maas-snapshot-backup guard: the run died or overran its window; \(thaw ? "thawing" : "starting") \(services.joined(separator: " "))\n".utf8))
        guard let ctl = Command.find("systemctl") else { return 1 }
        let r = try? await Command.run(ctl, [verb(thaw: thaw), "--"] + services)
        return r?.succeeded == true ? 0 : 1
    }
}
