import Foundation
import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// Filesystem facts from statfs and /proc/self/mountinfo.
public enum FileSystem {
    /// `path`, or the nearest folder above it that exists (where it would be made).
    package static func nearestExisting(_ path: String) -> String {
        var probe = path
        while !FileManager.default.fileExists(atPath: probe) { probe = (probe as NSString).deletingLastPathComponent }
        return probe
    }

    static package let magic: [Int: String] = [0x9123683E: "btrfs", 0xEF53: "ext4", 0x58465342: "xfs", 0x01021994: "tmpfs",
                                       0x794C7630: "overlay", 0x6969: "nfs"]

    /// The filesystem type of `path` (statfs f_type), e.g. "btrfs", "ext4", "xfs".
    public static func type(of path: String) -> String? {
        var s = statfs()
        guard statfs(path, &s) == 0 else { return nil }
        return magic[Int(s.f_type)] ?? String(format: "0x%lx", Int(s.f_type))
    }

    /// Free bytes for an unprivileged writer... as root we count f_bavail too.
    /// Writes out the dirty data of the filesystem holding `path` (syncfs(2)), so that a snapshot
    /// taken right after flushes almost nothing. Returns the error, or nil.
    @discardableResult
    public static func sync(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_DIRECTORY)
        guard fd >= 0 else { return "cannot open \(path): \(Errno.last.description)" }
        defer { close(fd) }
        return CLinux.syncfs(fd) == 0 ? nil : "syncfs \(path): \(Errno.last.description)"
    }

    public static func freeBytes(_ path: String) -> Int64? {
        var s = statvfs()
        guard statvfs(path, &s) == 0 else { return nil }
        return Int64(s.f_bavail) * Int64(s.f_frsize)
    }

    /// One line of /proc/self/mountinfo.
    public struct Mount: Sendable {
        public var majorMinor: String
        public var root: String
        public var mountPoint: String
        public var fsType: String
        public var source: String
    }

    public static func mounts() -> [Mount] {
        guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            let parts = line.split(separator: " ").map(String.init)
            guard let dash = parts.firstIndex(of: "-"), parts.count > dash + 2, parts.count > 4 else { return nil }
            return Mount(majorMinor: parts[2], root: unescape(parts[3]), mountPoint: unescape(parts[4]),
                         fsType: parts[dash + 1], source: unescape(parts[dash + 2]))
        }
    }

    /// The mount holding `path`: the longest mount point that is a prefix of it (the last one when stacked).
    public static func mount(holding path: String) -> Mount? {
        let p = (path as NSString).standardizingPath
        var best: Mount?
        for m in mounts() where m.mountPoint == "/" || p == m.mountPoint || p.hasPrefix(m.mountPoint + "/") {
            if best == nil || m.mountPoint.count >= best!.mountPoint.count { best = m }
        }
        return best
    }

    static package func unescape(_ s: String) -> String {
        var out = ""
        var it = Array(s.utf8)[...]
        var bytes: [UInt8] = []
        while let c = it.first {
            if c == UInt8(ascii: "\\"), it.count >= 4, let v = UInt8(String(decoding: it.dropFirst().prefix(3), as: UTF8.self), radix: 8) {
                bytes.append(v)
                it = it.dropFirst(4)
            } else {
                bytes.append(c)
                it = it.dropFirst()
            }
        }
        out = String(decoding: bytes, as: UTF8.self)
        return out
    }
}

/// The sum of file sizes below `path` (not following links), leaving out what `skip` names.
package func treeSize(_ path: String, skip: (String) -> Bool) -> Int64 {
    if skip(path) { return 0 }
    var st = stat()
    guard lstat(path, &st) == 0 else { return 0 }
    if (st.st_mode & S_IFMT) == S_IFDIR {
        var total: Int64 = 0
        for n in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] {
            total += treeSize(path + "/" + n, skip: skip)
        }
        return total
    }
    return (st.st_mode & S_IFMT) == S_IFREG ? Int64(st.st_size) : 0
}

package func isUnder(_ p: String, _ dir: String) -> Bool { p == dir || p.hasPrefix(dir == "/" ? "/" : dir + "/") }
