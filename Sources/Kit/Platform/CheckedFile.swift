import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A file another user might replace, opened once (`O_NOFOLLOW|O_NONBLOCK`: no symlink, no
/// blocking on a FIFO) and checked on the descriptor (regular file, root's or the caller's, no
/// permission bits for group or others, at most `maxBytes`); read and handed on through that
/// descriptor only (`procPath`), never by its name again.
public final class CheckedFile: Sendable {
    public let fd: Int32
    public let path: String
    public let size: Int

    /// Opens and checks `path`; `key` names the config key in the one-line error (exit 78).
    public init(path: String, key: String, maxBytes: Int = 64 << 10) throws {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else {
            let e = Errno.last
            if e == .noSuchFileOrDirectory {
                throw BackupError.config("\(key) \(path) does not exist", hint: "create it (owner root, mode 0600)")
            }
            if e == .tooManySymbolicLinkLevels {
                throw BackupError.config("\(key) \(path) is a symbolic link", hint: "point the key at the file itself (owner root, mode 0600)")
            }
            throw BackupError.config("\(key) \(path) cannot be opened: \(e.description)", hint: "check the path and its folders")
        }
        var st = stat()
        do {
            guard fstat(fd, &st) == 0 else { throw BackupError.config("\(key) \(path) cannot be read: \(Errno.last.description)") }
            guard (st.st_mode & S_IFMT) == S_IFREG else {
                throw BackupError.config("\(key) \(path) is not a regular file", hint: "point it at a file (owner root, mode 0600)")
            }
            if st.st_uid != 0 && st.st_uid != geteuid() {
                throw BackupError.config("\(key) \(path) belongs to uid \(st.st_uid), not root", hint: "chown root: \(path)")
            }
            let mode = st.st_mode & 0o7777
            if mode & 0o077 != 0 {
                throw BackupError.config("\(key) \(path) has mode \(String(mode, radix: 8)): group or others can use it", hint: "chmod 600 \(path)")
            }
            if Int(st.st_size) > maxBytes {
                throw BackupError.config("\(key) \(path) is larger than \(maxBytes) bytes", hint: "it holds a password or KEY=VALUE lines only")
            }
        } catch {
            close(fd)
            throw error
        }
        self.fd = fd
        self.path = path
        self.size = Int(st.st_size)
    }

    deinit { close(fd) }

    /// The same open file for a child process of ours (restic): a name that reopens this
    /// descriptor's file, whatever is at `path` by then.
    public var procPath: String { "/proc/\(getpid())/fd/\(fd)" }

    /// The contents, read from the descriptor (from offset 0, at most the size checked + 1 byte).
    public func bytes() throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: size + 1)
        var got = 0
        while got < out.count {
            let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + got, $0.count - got, off_t(got)) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw BackupError.config("\(path) cannot be read: \(Errno.last.description)") }
            if n == 0 { break }
            got += n
        }
        return Array(out[0..<min(got, size)])
    }
}
