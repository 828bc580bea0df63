import Foundation
import MSBKit
#if canImport(Glibc)
import Glibc
#endif

/// An archive opened once, from a place only root (or the user running the tool) can change.
///
/// Verify, the dump's load and the extraction each read the file again through
/// `/proc/self/fd/<fd>`: the same inode, with an offset of their own, whatever is renamed over the
/// archive's name after it was checked. The file must be a regular file (not a symlink, FIFO or
/// device), owned by root or the caller and writable by nobody else; every folder above it must be
/// owned by root or the caller, and its own folder writable by nobody else (a sticky folder such
/// as /tmp is accepted above that, not as the archive's own folder).
public final class ArchiveSource: @unchecked Sendable {
    /// The archive's absolute path, for messages, the sidecar and the stamp.
    public let path: String
    /// fstat of the open file.
    public let status: stat
    package let fd: Int32

    /// Opens the file at `path` read-only once it passed the checks; reads go through `readPath`.
    public init(path: String) throws {
        self.path = path
        let hint = "copy it as root into the destination (install -m 600 -o root \(path) DESTINATION/) and give its name"
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else {
            let e = errno
            if e == ELOOP {
                throw BackupError(.usage, "\(path) is a symlink: give the archive itself", hint: "the link points to \((try? FileManager.default.destinationOfSymbolicLink(atPath: path)) ?? "?")")
            }
            if e == ENOENT { throw BackupError(.usage, "the archive \(path) does not exist", hint: "run `maas-snapshot-backup list` to see the backups") }
            throw BackupError(.usage, "cannot open \(path): \(Errno(rawValue: e).description)", hint: "give a .tar.gz archive written by maas-snapshot-backup")
        }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw BackupError(.usage, "\(path) is not a regular file", hint: "give a .tar.gz archive written by maas-snapshot-backup")
        }
        let me = geteuid()
        func refuse(_ why: String) -> BackupError {
            close(fd)
            return BackupError.data("refusing \(path): \(why), so it may not be the archive that was written", hint: hint)
        }
        if st.st_uid != 0 && st.st_uid != me { throw refuse("it is owned by uid \(st.st_uid), not root") }
        if st.st_mode & 0o022 != 0 { throw refuse("group or others can write it (mode \(String(format: "%04o", st.st_mode & 0o7777)))") }
        // The folders above it: nobody but root (or the caller) can rename or replace what is in them.
        var dir = (path as NSString).deletingLastPathComponent
        var own = true
        while true {
            var ds = stat()
            guard lstat(dir, &ds) == 0 else { throw refuse("its folder \(dir) cannot be read (\(Errno.last.description))") }
            if (ds.st_mode & S_IFMT) != S_IFDIR { throw refuse("\(dir) is not a folder") }
            if ds.st_uid != 0 && ds.st_uid != me { throw refuse("its folder \(dir) is owned by uid \(ds.st_uid)") }
            let othersWrite = ds.st_mode & 0o022 != 0
            if othersWrite && (own || ds.st_mode & S_ISVTX == 0) {
                throw refuse("it is in \(dir), which others can write")
            }
            own = false
            if dir == "/" || dir.isEmpty { break }
            dir = (dir as NSString).deletingLastPathComponent
        }
        // Reads block on nothing: it is a regular file.
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        self.fd = fd
        self.status = st
    }

    deinit { close(fd) }

    /// A path that opens this same file again, with its own offset.
    public var readPath: String { "/proc/self/fd/\(fd)" }

    /// The file's size, mtime (seconds and nanoseconds) and inode as opened.
    public var size: Int64 { Int64(status.st_size) }
}
