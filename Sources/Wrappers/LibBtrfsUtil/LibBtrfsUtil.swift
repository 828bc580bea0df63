import CBtrfsUtil
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// An error from libbtrfsutil: the function, its error code, btrfs_util_strerror's message and errno.
public struct BtrfsUtilError: Error, Sendable, CustomStringConvertible {
    public var function: String
    public var code: UInt32
    public var errno: Int32
    public var message: String
    public var description: String {
        "\(function): \(message)" + (errno != 0 ? " (\(Errno(rawValue: errno).description))" : "")
    }
    /// True when the error is BTRFS_UTIL_ERROR_NOT_BTRFS or BTRFS_UTIL_ERROR_NOT_SUBVOLUME.
    public var isNotBtrfsOrNotSubvolume: Bool {
        code == BTRFS_UTIL_ERROR_NOT_BTRFS.rawValue || code == BTRFS_UTIL_ERROR_NOT_SUBVOLUME.rawValue
    }
}

@inline(__always)
private func check(_ function: String, _ body: () -> btrfs_util_error) throws {
    errno = 0
    let rc = body()
    let saved = errno
    guard rc == BTRFS_UTIL_OK else {
        throw BtrfsUtilError(function: function, code: rc.rawValue, errno: saved,
                             message: btrfs_util_strerror(rc).map { String(cString: $0) } ?? "error \(rc.rawValue)")
    }
}

public enum BtrfsUtil {
    /// btrfs_util_is_subvolume: true when `path` is the root of a subvolume, false when it is a plain
    /// directory on Btrfs or not on Btrfs at all.
    public static func isSubvolume(_ path: String) throws -> Bool {
        do {
            try check("btrfs_util_is_subvolume") { btrfs_util_is_subvolume(path) }
            return true
        } catch let e as BtrfsUtilError where e.isNotBtrfsOrNotSubvolume {
            return false
        }
    }

    /// btrfs_util_subvolume_id: the id of the subvolume containing `path`.
    public static func subvolumeID(_ path: String) throws -> UInt64 {
        var id: UInt64 = 0
        try check("btrfs_util_subvolume_id") { btrfs_util_subvolume_id(path, &id) }
        return id
    }

    /// btrfs_util_create_snapshot with BTRFS_UTIL_CREATE_SNAPSHOT_READ_ONLY when `readOnly`.
    public static func createSnapshot(source: String, path: String, readOnly: Bool) throws {
        let flags: Int32 = readOnly ? Int32(BTRFS_UTIL_CREATE_SNAPSHOT_READ_ONLY) : 0
        try check("btrfs_util_create_snapshot") { btrfs_util_create_snapshot(source, path, flags, nil, nil) }
    }

    /// btrfs_util_delete_subvolume.
    public static func deleteSubvolume(_ path: String) throws {
        try check("btrfs_util_delete_subvolume") { btrfs_util_delete_subvolume(path, 0) }
    }

    /// btrfs_util_set_subvolume_read_only.
    public static func setReadOnly(_ path: String, _ readOnly: Bool) throws {
        try check("btrfs_util_set_subvolume_read_only") { btrfs_util_set_subvolume_read_only(path, readOnly) }
    }
}
