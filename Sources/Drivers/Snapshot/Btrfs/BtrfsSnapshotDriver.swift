import Foundation
import MSBKit
import LibBtrfsUtil
import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// Btrfs: a read-only snapshot of the subvolume holding a path, through libbtrfsutil.
/// Snapshots go in a hidden folder at the subvolume's root, `.maas-snapshot-backup/`, which the
/// archive never includes; they need no mount.
public struct BtrfsSnapshotDriver: SnapshotDriver {
    public static let snapshotFolder = ".maas-snapshot-backup"
    public var method: SnapshotMethod { .btrfs }

    public init() {}

    public func probe(path: String) throws -> Volume? {
        guard FileSystem.type(of: path) == "btrfs" else { return nil }
        // Walk up to the subvolume root holding `path` (each subvolume has its own st_dev).
        var cur = (path as NSString).standardizingPath
        while true {
            do {
                if try BtrfsUtil.isSubvolume(cur) {
                    return Volume(method: .btrfs, livePath: cur, identity: cur, fsType: "btrfs",
                                  detail: "subvolume \(cur)")
                }
            } catch let e as BtrfsUtilError {
                throw BackupError.unavailable("cannot inspect \(cur) on Btrfs: \(e)")
            }
            if cur == "/" { return nil }
            cur = (cur as NSString).deletingLastPathComponent
        }
    }

    public func checkCapacity(_ volumes: [Volume]) throws {
        for v in volumes {
            let folder = v.livePath + "/" + Self.snapshotFolder
            var st = stat()
            if lstat(folder, &st) == 0 && (st.st_mode & S_IFMT) != S_IFDIR {
                throw BackupError.unavailable("\(folder) exists and is not a folder", hint: "move it away; the tool keeps its Btrfs snapshots there")
            }
            if lstat(folder, &st) == 0, let why = Self.untrusted(st), !Self.isEmptyFolder(folder) {
                throw BackupError.unavailable("\(folder) \(why) and is not empty: the snapshot would be made in a folder another user controls",
                                              hint: "check what is in it, then remove it; the tool makes it itself (owner root, mode 0700)")
            }
            guard access(v.livePath, W_OK) == 0 else {
                throw BackupError.unavailable("cannot write in \(v.livePath) to make a snapshot there", hint: "run as root on a writable subvolume")
            }
        }
    }

    public func plannedSnapshot(of volume: Volume, runID: String) -> TakenSnapshot {
        let name = "msb-\(runID)-" + String(volume.livePath.split(separator: "/").last ?? "root")
        let path = volume.livePath + "/" + Self.snapshotFolder + "/" + name
        return TakenSnapshot(volume: volume, identity: path, readablePath: path)
    }

    public func create(_ snapshot: TakenSnapshot) throws {
        let folder = snapshot.volume.livePath + "/" + Self.snapshotFolder
        if mkdir(folder, 0o700) != 0 && errno != EEXIST {
            throw BackupError.failed("cannot create \(folder): \(Errno.last.description)")
        }
        // A folder someone else made (the maas user can write in /var/lib/maas) is not used: an
        // empty one is made again, anything else fails the run. The snapshot is made through the
        // checked folder's descriptor, so a folder swapped in after the check is not used either.
        var dfd = open(folder, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        var st = stat()
        if dfd >= 0, fstat(dfd, &st) == 0, Self.untrusted(st) != nil {
            close(dfd)
            dfd = -1
            if rmdir(folder) == 0 && mkdir(folder, 0o700) == 0 {
                dfd = open(folder, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            }
        }
        guard dfd >= 0, fstat(dfd, &st) == 0 else {
            throw BackupError.failed("cannot open \(folder): \(Errno.last.description)")
        }
        defer { close(dfd) }
        if let why = Self.untrusted(st) {
            throw BackupError.failed("\(folder) \(why) and is not empty: the snapshot would be made in a folder another user controls",
                                     hint: "check what is in it, then remove it; the tool makes it itself (owner root, mode 0700)")
        }
        let name = (snapshot.identity as NSString).lastPathComponent
        do {
            try BtrfsUtil.createSnapshot(source: snapshot.volume.livePath, path: "/proc/self/fd/\(dfd)/\(name)", readOnly: true)
        } catch let e as BtrfsUtilError {
            throw BackupError.failed("cannot snapshot \(snapshot.volume.livePath): \(e)")
        }
    }

    /// Why a snapshot folder found on disk is not ours to use (not root's, or writable by group or
    /// others), or nil when it is fine.
    static package func untrusted(_ st: stat) -> String? {
        if st.st_uid != 0 { return "belongs to uid \(st.st_uid), not root" }
        if st.st_mode & 0o022 != 0 { return "is writable by group or others (mode \(String(format: "%04o", st.st_mode & 0o7777)))" }
        return nil
    }

    static package func isEmptyFolder(_ path: String) -> Bool {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? ["?"]).isEmpty
    }

    public func expose(_ snapshot: TakenSnapshot, privateDir: String) throws -> TakenSnapshot {
        snapshot  // a Btrfs snapshot is readable where it was made
    }

    public func validate(_ snapshot: TakenSnapshot) throws {}

    public func remove(_ snapshot: TakenSnapshot) throws {
        var st = stat()
        guard lstat(snapshot.identity, &st) == 0 else { return }  // never made, or already gone
        do {
            try BtrfsUtil.deleteSubvolume(snapshot.identity)
        } catch let e as BtrfsUtilError {
            throw BackupError.failed("cannot delete the snapshot \(snapshot.identity): \(e)")
        }
        // The hidden folder goes too when it is empty.
        _ = rmdir(snapshot.volume.livePath + "/" + Self.snapshotFolder)
    }
}

