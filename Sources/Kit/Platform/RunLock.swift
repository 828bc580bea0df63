import Foundation
import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// An exclusive flock on the lock file, so that runs never overlap. The holder's PID is written into it.
/// The lock file and its folder must be root's and writable by no one else (the default folder,
/// /run/maas-snapshot-backup, is made 0700): a user who could create the file first and hold a
/// flock on it would stop every backup, and the PID read back from it could be anything.
public final class RunLock {
    private var fd: Int32 = -1
    public let path: String

    /// Waits up to `timeout` seconds for the lock.
    public init(path: String, timeout: Double) throws {
        self.path = path
        let dir = (path as NSString).deletingLastPathComponent
        if mkdir(dir, 0o700) != 0 && errno != EEXIST {
            throw BackupError(.cantCreate, "cannot create the lock folder \(dir): \(Errno.last.description)",
                              hint: "set lock_file in the config to a place in a root-owned folder")
        }
        try RunLock.checkOwnership(dir, isFolder: true)
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0o600)
        guard fd >= 0 else {
            throw BackupError(.cantCreate, "cannot open the lock file \(path): \(Errno.last.description)",
                              hint: "set lock_file in the config to a place in a root-owned folder")
        }
        do {
            var st = stat()
            guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
                throw BackupError.config("the lock file \(path) is not a regular file", hint: "remove it, or set lock_file in the config")
            }
            try RunLock.checkOwner(st, path, what: "lock file")
            if st.st_mode & 0o077 != 0 { _ = fchmod(fd, 0o600) }  // ours (root's): written by an older version
        } catch {
            close(fd)
            fd = -1
            throw error
        }
        let deadline = Date().addingTimeInterval(max(0, timeout))
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR else {
                close(fd)
                throw BackupError.failed("cannot lock \(path): \(Errno.last.description)")
            }
            if Date() >= deadline {
                let holder = RunLock.holderPID(fd)
                close(fd)
                throw BackupError(.locked, "another maas-snapshot-backup run (PID \(holder.map(String.init) ?? "?")) holds \(path)",
                                  hint: "wait for it to finish, or raise --lock-timeout")
            }
            usleep(100_000)
        }
        _ = ftruncate(fd, 0)
        let s = "\(getpid())\n"
        _ = s.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    deinit { release() }

    /// The PID the holder wrote (the file is root's and 0600, checked above): digits only, else nil.
    static package func holderPID(_ fd: Int32) -> Int32? {
        var buf = [UInt8](repeating: 0, count: 16)
        let n = pread(fd, &buf, buf.count, 0)
        guard n > 0 else { return nil }
        let text = String(decoding: buf[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int32(text)
    }

    /// Refuses a lock folder that is not a folder, not root's, or writable by group or others.
    static package func checkOwnership(_ path: String, isFolder: Bool) throws {
        var st = stat()
        guard lstat(path, &st) == 0 else {
            throw BackupError(.cantCreate, "cannot read the lock folder \(path): \(Errno.last.description)")
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else {
            throw BackupError.config("the lock folder \(path) is not a folder (a symlink?)", hint: "set lock_file in the config to a file in a root-owned folder")
        }
        try checkOwner(st, path, what: "lock folder")
        if st.st_mode & 0o022 != 0 {
            throw BackupError.config("the lock folder \(path) is writable by other users (mode \(String(format: "%04o", st.st_mode & 0o7777))): another user could take the lock first",
                                     hint: "set lock_file to a file in a root-owned folder such as /run/maas-snapshot-backup, or chmod go-w \(path)")
        }
    }

    static package func checkOwner(_ st: stat, _ path: String, what: String) throws {
        if st.st_uid != 0 && st.st_uid != geteuid() {
            throw BackupError.config("the \(what) \(path) belongs to uid \(st.st_uid), not root: another user could hold the lock",
                                     hint: "remove it (or chown root \(path)), or set lock_file in the config to a root-owned folder")
        }
    }

    public func release() {
        guard fd >= 0 else { return }
        _ = ftruncate(fd, 0)
        close(fd)
        fd = -1
    }
}

