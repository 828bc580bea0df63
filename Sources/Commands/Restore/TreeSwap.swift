import Foundation
import MSBKit
import MSBSnapshot
import MSBDatabase
import MSBServices
import MSBArchive
import MSBPackages
import MSBRegion
#if canImport(Glibc)
import Glibc
#endif

/// How restore swaps one backed-up folder (e.g. /etc/maas) for the archive's copy, keeping the
/// previous one on the same filesystem and never deleting it:
///
/// - `rename`: a plain folder is renamed to `<path>.pre-restore-<UTC time>` beside itself;
/// - `contents`: a mount point or Btrfs subvolume root (which cannot be renamed away without losing
///   what it is) keeps its place (and so do its lost+found and the tool's snapshot folder), and its
///   other entries are renamed into
///   `<path>/.maas-snapshot-backup/pre-restore-<UTC time>/` (a folder backups leave out);
/// - `create`: the folder does not exist; the archive's copy is created.
///
/// Folders the backup left out (its `exclude`, e.g. boot-resources) and the snapshot folder are carried
/// over from the previous tree into the restored one (or, for `contents`, stay where they are).
/// Every step is recorded so that `undo` (and `recover`, after a crash) can put the previous tree back.
public struct TreeSwap: Sendable, Codable {
    public enum Mode: String, Sendable, Codable { case rename, contents, create }

    public var path: String
    public var live: String
    public var member: String
    public var mode: Mode
    /// Where the previous tree goes (empty for `create`).
    public var aside: String
    /// Paths relative to `live` carried over from the previous tree.
    public var keep: [String]
    /// `contents`: top-level names that are not moved.
    public var leftInPlace: [String]
    /// `contents`: top-level names moved into `aside`, in order.
    public var moved: [String] = []
    /// Kept paths moved from `aside` into the restored tree.
    public var carried: [String] = []
    public var madeSnapshotFolder = false
    /// Set (and recorded) before the first move: from then on `undo` has work to do.
    public var asideDone = false
    /// `contents`: every entry was moved (extraction may have started).
    public var allMoved = false
    public var originalMode: UInt32 = 0
    public var originalUid: UInt32 = 0
    public var originalGid: UInt32 = 0
    /// Bytes of file data the archive holds below this path.
    public var restoreBytes: Int64 = 0
    /// The MAAS 3.5+ image store relative to `live` ("image-storage"), when the archive lists its
    /// files (manifest `images`): the live store's files are moved into the restored one.
    public var imageStore: String?
    /// Names of the image files moved from the previous store into the restored one.
    public var carriedImages: [String]?

    static package let snapshotFolder = BtrfsSnapshotDriver.snapshotFolder

    // MARK: - Plan (changes nothing)

    static package func plan(path: String, config: Config, manifest: Manifest, stamp: String) throws -> TreeSwap {
        let live = config.live(path)
        let member = ArchiveVerifier.member(of: path)
        let keepRel: [String] = manifest.exclude.compactMap { ex in
            let e = ArchiveVerifier.member(of: ex)
            return e.hasPrefix(member + "/") ? String(e.dropFirst(member.count + 1)) : nil
        }
        let bytes = manifest.files.filter { $0.type == .file && ($0.path == member || $0.path.hasPrefix(member + "/")) }
            .reduce(Int64(0)) { $0 + $1.size }
        var st = stat()
        guard lstat(live, &st) == 0 else {
            guard errno == ENOENT else { throw BackupError.unavailable("cannot read \(live): \(Errno.last.description)") }
            var s = TreeSwap(path: path, live: live, member: member, mode: .create, aside: "", keep: [], leftInPlace: [])
            s.restoreBytes = bytes
            return s
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else {
            throw BackupError.unavailable("\(live) is not a folder (a symlink or a file)", hint: "move it away by hand, then restore")
        }
        let parent = (live as NSString).deletingLastPathComponent
        var pst = stat()
        guard stat(parent, &pst) == 0 else { throw BackupError.unavailable("cannot read \(parent)") }
        let std = (live as NSString).standardizingPath
        let mounts = FileSystem.mounts().map(\.mountPoint)
        let isVolumeRoot = st.st_dev != pst.st_dev || mounts.contains(std)
        let inner = mounts.filter { $0.hasPrefix(std + "/") }
        var topKeep = Set(keepRel.map { String($0.split(separator: "/").first ?? "") })
        for m in inner {
            let rel = String(m.dropFirst(std.count + 1))
            let top = String(rel.split(separator: "/").first ?? "")
            guard keepRel.contains(where: { rel == $0 || rel.hasPrefix($0 + "/") }) && keepRel.contains(top) else {
                throw BackupError.unavailable("\(m) is a mount point inside \(live): restore cannot move it aside",
                                              hint: "unmount it, or add it to exclude when backing up")
            }
        }
        var s = TreeSwap(path: path, live: live, member: member, mode: .rename, aside: "", keep: keepRel, leftInPlace: [])
        s.imageStore = imageStore(of: manifest, member: member)
        s.originalMode = UInt32(st.st_mode & 0o7777)
        s.originalUid = st.st_uid
        s.originalGid = st.st_gid
        s.restoreBytes = bytes
        if isVolumeRoot || !inner.isEmpty {
            s.mode = .contents
            s.aside = unique(live + "/" + snapshotFolder + "/pre-restore-" + stamp)
            topKeep.insert(snapshotFolder)
            let names = (try? FileManager.default.contentsOfDirectory(atPath: live)) ?? []
            // Kept entries at the top stay where they are; deeper ones travel with their parent and come back.
            s.leftInPlace = names.filter { topKeep.contains($0) && (keepRel.contains($0) || $0 == snapshotFolder) }.sorted()
            // A filesystem's own lost+found stays too (the archive's copy, if any, lands in it).
            if isVolumeRoot && names.contains("lost+found") && !s.leftInPlace.contains("lost+found") { s.leftInPlace.append("lost+found") }
            s.keep = keepRel.filter { !s.leftInPlace.contains($0) }
        } else {
            s.aside = unique(live + ".pre-restore-" + stamp)
            if FileManager.default.fileExists(atPath: live + "/" + snapshotFolder) { s.keep.append(snapshotFolder) }
        }
        return s
    }

    static package func unique(_ p: String) -> String {
        var c = p, i = 1
        var st = stat()
        while lstat(c, &st) == 0 { c = p + "-\(i)"; i += 1 }
        return c
    }

    /// Free space on the filesystem that will hold the restored tree (the previous one stays).
    package func checkSpace() throws {
        var probe = live
        while !FileManager.default.fileExists(atPath: probe) { probe = (probe as NSString).deletingLastPathComponent }
        guard let free = FileSystem.freeBytes(probe) else { return }
        let need = restoreBytes + restoreBytes / 20 + (16 << 20)
        if free < need {
            throw BackupError.unavailable("not enough free space for \(live): \(Human.bytes(free)) free, about \(Human.bytes(need)) needed (the previous files are kept aside)",
                                          hint: "free some space, or move old \(path).pre-restore-* folders away")
        }
    }

    // MARK: - Do

    /// Moves the previous tree aside. `record` saves the state; each move is recorded before it is
    /// made, and `undo` checks what really happened.
    mutating package func moveAside(record: (TreeSwap) throws -> Void) throws {
        switch mode {
        case .create:
            asideDone = true
            try record(self)
        case .rename:
            asideDone = true
            try record(self)
            guard rename(live, aside) == 0 else {
                throw BackupError.failed("cannot move \(live) aside to \(aside): \(Errno.last.description)")
            }
        case .contents:
            let folder = live + "/" + Self.snapshotFolder
            var st = stat()
            if lstat(folder, &st) != 0 {
                madeSnapshotFolder = true
                try record(self)
                guard mkdir(folder, 0o700) == 0 else {
                    throw BackupError.failed("cannot create \(folder): \(Errno.last.description)")
                }
            }
            asideDone = true
            try record(self)
            guard mkdir(aside, 0o700) == 0 else {
                throw BackupError.failed("cannot create \(aside): \(Errno.last.description)")
            }
            let names = try FileManager.default.contentsOfDirectory(atPath: live).sorted()
            for n in names where !leftInPlace.contains(n) && n != Self.snapshotFolder {
                moved.append(n)
                try record(self)
                guard rename(live + "/" + n, aside + "/" + n) == 0 else {
                    throw BackupError.failed("cannot move \(live)/\(n) aside: \(Errno.last.description)")
                }
            }
            allMoved = true
            try record(self)
        }
    }

    /// After extraction: carries the kept folders from the previous tree into the restored one.
    mutating package func carryKept(record: (TreeSwap) throws -> Void, log: (String) -> Void) throws {
        guard mode != .create else { return }
        for rel in keep {
            let src = aside + "/" + rel, dst = live + "/" + rel
            var st = stat()
            guard lstat(src, &st) == 0 else { continue }
            if lstat(dst, &st) == 0 {
                log("warning: \(dst) came from the archive too; the previous one stays in \(src)")
                continue
            }
            try FileManager.default.createDirectory(atPath: (dst as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
            carried.append(rel)
            try record(self)
            guard rename(src, dst) == 0 else {
                throw BackupError.failed("cannot carry \(src) over into the restored \(live): \(Errno.last.description)")
            }
        }
        try carryImages(record: record, log: log)
    }

    // MARK: - Undo

    /// Puts the previous tree back: the restored files go, the aside copy returns. Safe to run again
    /// after a crash: it checks what is where before each step.
    mutating package func undo(record: (TreeSwap) throws -> Void) throws {
        guard asideDone else { return }
        var st = stat()
        func exists(_ p: String) -> Bool { lstat(p, &st) == 0 }
        try undoImages(record: record)
        for rel in carried.reversed() {
            let src = live + "/" + rel, dst = aside + "/" + rel
            if exists(src) && !exists(dst) {
                try FileManager.default.createDirectory(atPath: (dst as NSString).deletingLastPathComponent,
                                                        withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
                guard rename(src, dst) == 0 else {
                    throw BackupError.failed("cannot move \(src) back to \(dst): \(Errno.last.description)")
                }
            }
            carried.removeLast()
            try record(self)
        }
        switch mode {
        case .create:
            if exists(live) { try TreeRemover.remove(live) }
        case .rename:
            // Only when the previous tree really is aside is what stands at `live` the restored one.
            if exists(aside) {
                if exists(live) { try TreeRemover.remove(live) }
                guard rename(aside, live) == 0 else {
                    throw BackupError.failed("cannot move \(aside) back to \(live): \(Errno.last.description)")
                }
            }
        case .contents:
            if allMoved {
                // Everything here but what stayed in place came from the archive.
                let names = try FileManager.default.contentsOfDirectory(atPath: live)
                for n in names where !leftInPlace.contains(n) && n != Self.snapshotFolder {
                    try TreeRemover.remove(live + "/" + n)
                }
            }
            for n in moved.reversed() {
                if exists(aside + "/" + n) {
                    if exists(live + "/" + n) { try TreeRemover.remove(live + "/" + n) }
                    guard rename(aside + "/" + n, live + "/" + n) == 0 else {
                        throw BackupError.failed("cannot move \(aside)/\(n) back to \(live): \(Errno.last.description)")
                    }
                }
                moved.removeLast()
                try record(self)
            }
            _ = rmdir(aside)
            if madeSnapshotFolder { _ = rmdir(live + "/" + Self.snapshotFolder) }
            _ = chown(live, originalUid, originalGid)
            _ = chmod(live, mode_t(originalMode))
        }
        asideDone = false
        allMoved = false
        try record(self)
    }
}
