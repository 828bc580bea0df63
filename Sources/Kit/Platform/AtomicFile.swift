import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Writes a whole file atomically and safely in a folder others may write to: the data goes to a
/// new temporary name (random suffix, created with O_CREAT|O_EXCL|O_NOFOLLOW, so a symlink or file
/// planted there makes the write fail instead of being followed), mode and owner are set on the
/// descriptor (never by path), the data is fsynced, the temporary is renamed over the target and
/// the folder is fsynced. Every file the tool writes beside its archives or in its state folder
/// (metrics, `.verified` stamps, sidecar manifests, run and restore journals) goes through here.
public enum AtomicFile {
    /// Writes `bytes` to `path` with `mode`, owned by `owner` (uid, gid) when given, else by the
    /// caller. Throws a SystemCallError naming the failed call.
    public static func write(_ bytes: [UInt8], to path: String, mode: mode_t, owner: (uid_t, gid_t)? = nil) throws {
        let dir = (path as NSString).deletingLastPathComponent
        let name = (path as NSString).lastPathComponent
        var fd: Int32 = -1
        var tmp = ""
        for _ in 0..<16 {
            tmp = (dir.isEmpty ? "" : dir + "/") + "." + name + ".tmp-" + randomSuffix()
            fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode & 0o7777)
            if fd >= 0 || errno != EEXIST { break }
        }
        guard fd >= 0 else { throw err("open", tmp) }
        var ok = false
        defer {
            if fd >= 0 { close(fd) }
            if !ok { unlink(tmp) }
        }
        guard fchmod(fd, mode & 0o7777) == 0 else { throw err("fchmod", tmp) }
        if let (uid, gid) = owner, fchown(fd, uid, gid) != 0 { throw err("fchown", tmp) }
        do { try Errno.writeAll(fd, bytes) } catch { throw err("write", tmp, error) }
        guard fsync(fd) == 0 else { throw err("fsync", tmp) }
        guard close(fd) == 0 else { fd = -1; throw err("close", tmp) }
        fd = -1
        guard rename(tmp, path) == 0 else { throw err("rename", path) }
        ok = true
        syncFolder(dir.isEmpty ? "." : dir)
    }

    /// fsync of a folder, so that a rename or a new name in it is durable.
    public static func syncFolder(_ dir: String) {
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 { _ = fsync(fd); close(fd) }
    }

    static package func randomSuffix() -> String {
        var g = SystemRandomNumberGenerator()
        return String(format: "%016llx", g.next() as UInt64)
    }

    private static func err(_ call: String, _ path: String, _ e: Errno = .last) -> SystemCallError {
        SystemCallError(call, errno: e.rawValue, message: "\(path): \(e.description)")
    }
}
