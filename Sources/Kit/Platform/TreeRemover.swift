import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The one recursive delete: relative to open folder descriptors (openat/unlinkat with
/// `O_NOFOLLOW|O_DIRECTORY`), an explicit stack (no recursion, no PATH_MAX limit), never into
/// another filesystem than the one the tree starts on. A folder swapped for a symlink while the
/// walk runs is unlinked as a symlink, never followed: root's deletes stay inside the tree even
/// when its owner (the maas user, for /var/lib/maas) changes it under our feet.
public enum TreeRemover {
    /// Called with each folder's path just before it is opened (tests swap it for a symlink there).
    public typealias Pause = (String) -> Void

    /// Removes `path` (a file, a symlink or a folder tree). A missing `path` is not an error.
    public static func remove(_ path: String, pause: Pause? = nil) throws {
        let parent = (path as NSString).deletingLastPathComponent
        let name = (path as NSString).lastPathComponent
        let dirFd = open(parent.isEmpty ? "." : parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dirFd >= 0 else {
            if errno == ENOENT { return }
            throw failure("open", parent, Errno.last)
        }
        defer { close(dirFd) }
        try remove(at: dirFd, name: name, display: path, pause: pause)
    }

    /// Removes `name` in the folder open as `dirFd`.
    public static func remove(at dirFd: Int32, name: String, display: String? = nil, pause: Pause? = nil) throws {
        try remove(at: dirFd, nameBytes: Array(name.utf8), display: display ?? name, pause: pause)
    }

    /// Removes the entry named by these bytes (a name that need not be UTF-8) in the folder open as `dirFd`.
    public static func remove(at dirFd: Int32, nameBytes: [UInt8], display: String, pause: Pause? = nil) throws {
        let shown = display
        let name = nameBytes.map { CChar(bitPattern: $0) } + [0]
        var top = stat()
        guard fstat(dirFd, &top) == 0 else { throw failure("stat", shown, Errno.last) }
        var walk = Walk(device: top.st_dev, pause: pause)
        defer { walk.closeAll() }
        guard try walk.enter(parent: dirFd, name: name, path: shown) else { return }
        while let frame = walk.stack.last {
            guard let entry = readdir(frame.dir) else {
                walk.stack.removeLast()
                closedir(frame.dir)
                let parentFd = walk.stack.last.map { dirfd($0.dir) } ?? dirFd
                if unlinkat(parentFd, frame.name, AT_REMOVEDIR) != 0 && errno != ENOENT {
                    walk.firstError = walk.firstError ?? failure("remove", frame.path, Errno.last)
                }
                continue
            }
            // The name as bytes: a name that is not UTF-8 is removed like any other.
            let child: [CChar] = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                let bytes = raw.bindMemory(to: CChar.self)
                return Array(bytes.prefix { $0 != 0 }) + [0]
            }
            if child == [46, 0] || child == [46, 46, 0] { continue }
            let shownChild = String(decoding: child.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
            _ = try walk.enter(parent: dirfd(frame.dir), name: child, path: frame.path + "/" + shownChild)
        }
        if let e = walk.firstError { throw e }
    }

    private struct Frame {
        var dir: OpaquePointer
        var name: [CChar]
        var path: String
    }

    private struct Walk {
        let device: dev_t
        let pause: Pause?
        var stack: [Frame] = []
        var firstError: BackupError?

        init(device: dev_t, pause: Pause?) {
            self.device = device
            self.pause = pause
        }

        /// Unlinks `name` when it is not a folder; opens it and pushes it when it is one.
        /// False when there was nothing to remove.
        mutating func enter(parent: Int32, name: [CChar], path: String) throws -> Bool {
            var st = stat()
            guard fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else {
                if errno == ENOENT { return false }
                throw TreeRemover.failure("stat", path, Errno.last)
            }
            if (st.st_mode & S_IFMT) == S_IFDIR {
                pause?(path)
                let fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
                if fd >= 0 {
                    var opened = stat()
                    if fstat(fd, &opened) != 0 || opened.st_dev != device {
                        close(fd)
                        firstError = firstError ?? BackupError.failed("not removing \(path): another filesystem is mounted there",
                                                                      hint: "unmount it, then remove the rest by hand")
                        return true
                    }
                    guard let dir = fdopendir(fd) else {
                        close(fd)
                        throw TreeRemover.failure("open", path, Errno.last)
                    }
                    stack.append(Frame(dir: dir, name: name, path: path))
                    return true
                }
                // Swapped for something else since the stat (a symlink: ELOOP, a file: ENOTDIR): unlink it as it is.
                guard errno == ELOOP || errno == ENOTDIR else {
                    if errno == ENOENT { return false }
                    throw TreeRemover.failure("open", path, Errno.last)
                }
            }
            if unlinkat(parent, name, 0) != 0 && errno != ENOENT {
                // EISDIR: swapped for a folder since the stat; left, and said so.
                firstError = firstError ?? TreeRemover.failure("remove", path, Errno.last)
            }
            return true
        }

        mutating func closeAll() {
            for f in stack { closedir(f.dir) }
            stack = []
        }
    }

    static func failure(_ what: String, _ path: String, _ e: Errno) -> BackupError {
        BackupError.failed("cannot \(what) \(path): \(e.description)")
    }
}
