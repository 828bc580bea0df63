import Foundation
import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// An exclusive flock on the lock file, so that runs never overlap. The holder's PID is written into it.
public final class RunLock {
    private var fd: Int32 = -1
    public let path: String

    /// Waits up to `timeout` seconds for the lock.
    public init(path: String, timeout: Double) throws {
        self.path = path
        let dir = (path as NSString).deletingLastPathComponent
        _ = mkdir(dir, 0o755)
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else {
            throw BackupError(.cantCreate, "cannot open the lock file \(path): \(String(cString: strerror(errno)))",
                              hint: "set lock_file in the config to a writable place")
        }
        let deadline = Date().addingTimeInterval(max(0, timeout))
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR else {
                close(fd)
                throw BackupError.failed("cannot lock \(path): \(String(cString: strerror(errno)))")
            }
            if Date() >= deadline {
                let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
                close(fd)
                throw BackupError(.locked, "another maas-snapshot-backup run (PID \(holder.isEmpty ? "?" : holder)) holds \(path)",
                                  hint: "wait for it to finish, or raise --lock-timeout")
            }
            usleep(100_000)
        }
        _ = ftruncate(fd, 0)
        let s = "\(getpid())\n"
        _ = s.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    deinit { release() }

    public func release() {
        guard fd >= 0 else { return }
        _ = ftruncate(fd, 0)
        close(fd)
        fd = -1
    }
}

/// SIGINT, SIGTERM and SIGHUP set a flag that the pipelines check between steps; the window
/// finishes (services started again) before the run stops.
public enum Interruption {
    nonisolated(unsafe) static var signalNumber: sig_atomic_t = 0

    public static func install() {
        for s in [SIGINT, SIGTERM, SIGHUP] {
            var sa = sigaction()
            sa.__sigaction_handler.sa_handler = { sig in Interruption.signalNumber = sig }
            sigemptyset(&sa.sa_mask)
            sa.sa_flags = 0
            sigaction(s, &sa, nil)
        }
    }

    public static var requested: Int32? { signalNumber == 0 ? nil : signalNumber }

    public static func check() throws {
        if let s = requested {
            throw BackupError.failed("interrupted by signal \(s); everything this run made was removed")
        }
    }
}
