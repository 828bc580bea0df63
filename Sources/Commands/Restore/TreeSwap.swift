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
/// The archive's copy is first extracted, while MAAS runs, into a staging folder on the live
/// folder's filesystem (`<path>.restoring-<UTC time>` beside it; for `contents`,
/// `<path>/.maas-snapshot-backup/restoring-<UTC time>/`); with MAAS stopped, the previous tree goes
/// aside and the staged one takes its place by renames only, so the downtime does not grow with the
/// files (issue 25).
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
    /// Where the archive's copy is extracted while MAAS runs (nil in a journal of an older version,
    /// which extracted in place).
    public var staging: String?
    /// Set (and recorded) before the extraction into `staging` starts: from then on `undo` removes it.
    public var stageStarted: Bool?
    /// `rename`, `create`: the staged tree is being renamed to `live` (recorded before the rename).
    public var stagedIn: Bool?
    /// `contents`: the staged top-level names moved into `live`, in order (each recorded before).
    public var stagedMoved: [String]?

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
            s.staging = unique(live + ".restoring-" + stamp)
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
            s.staging = unique(live + "/" + snapshotFolder + "/restoring-" + stamp)
            topKeep.insert(snapshotFolder)
            let names = (try? FileManager.default.contentsOfDirectory(atPath: live)) ?? []
            // Kept entries at the top stay where they are; deeper ones travel with their parent and come back.
            s.leftInPlace = names.filter { topKeep.contains($0) && (keepRel.contains($0) || $0 == snapshotFolder) }.sorted()
            // A filesystem's own lost+found stays too (the archive's copy, if any, lands in it).
            if isVolumeRoot && names.contains("lost+found") && !s.leftInPlace.contains("lost+found") { s.leftInPlace.append("lost+found") }
            s.keep = keepRel.filter { !s.leftInPlace.contains($0) }
        } else {
            s.aside = unique(live + ".pre-restore-" + stamp)
            s.staging = unique(live + ".restoring-" + stamp)
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

    /// Free space for the staged copies: the archive's files of every swap whose live folder is on
    /// one filesystem are counted together against that filesystem's free space (the previous
    /// trees stay aside, so nothing is freed). Refuses in one line, before anything changes.
    static package func checkSpace(_ swaps: [TreeSwap]) throws {
        var byDevice: [UInt64: (probe: String, need: Int64, swaps: [TreeSwap])] = [:]
        for s in swaps {
            var probe = s.live
            while !FileManager.default.fileExists(atPath: probe) { probe = (probe as NSString).deletingLastPathComponent }
            var st = stat()
            guard stat(probe, &st) == 0 else { continue }
            var entry = byDevice[UInt64(st.st_dev)] ?? (probe, 0, [])
            entry.need += s.restoreBytes + s.restoreBytes / 20 + (16 << 20)
            entry.swaps.append(s)
            byDevice[UInt64(st.st_dev)] = entry
        }
        for (_, e) in byDevice.sorted(by: { $0.value.probe < $1.value.probe }) {
            guard let free = FileSystem.freeBytes(e.probe), free < e.need else { continue }
            let lives = e.swaps.map(\.live).joined(separator: " and ")
            throw BackupError.unavailable("not enough free space for the restored copy of \(lives): \(Human.bytes(free)) free, about \(Human.bytes(e.need)) needed (the previous files are kept aside); nothing was changed",
                                          hint: "free some space, or move old \(e.swaps.map { $0.path + ".pre-restore-*" }.joined(separator: ", ")) folders away")
        }
    }

    // MARK: - Do

    /// Before the extraction into `staging` (MAAS still runs): the snapshot folder made if a
    /// `contents` swap needs it, then `stageStarted` recorded. Returns `staging`.
    mutating package func beginStaging(record: (TreeSwap) throws -> Void) throws -> String {
        guard let staging else { throw BackupError.failed("no staging folder was planned for \(live)") }
        var st = stat()
        guard lstat(staging, &st) != 0 else {
            throw BackupError.failed("\(staging) already exists", hint: "it is not this run's: move it away, then restore again")
        }
        if mode == .contents { try makeSnapshotFolder(record: record) }
        stageStarted = true
        try record(self)
        return staging
    }

    private mutating func makeSnapshotFolder(record: (TreeSwap) throws -> Void) throws {
        let folder = live + "/" + Self.snapshotFolder
        var st = stat()
        guard lstat(folder, &st) != 0 else { return }
        madeSnapshotFolder = true
        try record(self)
        guard mkdir(folder, 0o700) == 0 else {
            throw BackupError.failed("cannot create \(folder): \(Errno.last.description)")
        }
    }

    /// With MAAS stopped, after `moveAside`: the staged tree takes the live folder's place by renames.
    /// `rename`, `create`: the staging folder becomes `live`; `contents`: its entries move into
    /// `live`, which takes the staged folder's mode and owner (an entry the live folder kept in place,
    /// such as lost+found, keeps its own; the archive's stays in the staging folder, with a warning).
    mutating package func moveStagedIn(record: (TreeSwap) throws -> Void, log: (LogLevel, String) -> Void) throws {
        guard let staging, stageStarted == true else { return }
        switch mode {
        case .create, .rename:
            stagedIn = true
            try record(self)
            guard rename(staging, live) == 0 else {
                throw BackupError.failed("cannot move the restored \(staging) to \(live): \(Errno.last.description)")
            }
        case .contents:
            var root = stat()
            guard lstat(staging, &root) == 0 else { throw BackupError.failed("the restored copy \(staging) is missing") }
            // Names as bytes (RawNames): a name that is not UTF-8 moves like any other.
            var done = stagedMoved ?? [], clash: [String] = []
            for n in try RawNames.list(staging) where !done.contains(RawNames.key(n)) {
                let key = RawNames.key(n)
                if RawNames.exists(live, n) {
                    // An empty folder of the archive where the live one stayed (a file system's
                    // lost+found) adds nothing: it goes; anything else is kept and said.
                    if !RawNames.removeEmptyFolder(staging, n) { clash.append(RawNames.display(n)) }
                    continue
                }
                done.append(key)
                stagedMoved = done
                try record(self)
                guard RawNames.move(n, from: staging, to: live) else {
                    throw BackupError.failed("cannot move the restored \(staging)/\(RawNames.display(n)) into \(live): \(Errno.last.description)")
                }
            }
            _ = chown(live, root.st_uid, root.st_gid)
            _ = chmod(live, root.st_mode & 0o7777)
            if clash.isEmpty {
                _ = rmdir(staging)
            } else {
                log(.warning, "warning: \(clash.map { live + "/" + $0 }.joined(separator: ", ")) stayed as it was; the archive's copy is in \(staging)")
            }
        }
    }

    /// Removes what the extraction into `staging` left (before the swap, or after a failure).
    mutating package func dropStaging(record: (TreeSwap) throws -> Void) throws {
        guard let staging, stageStarted == true else { return }
        var st = stat()
        if lstat(staging, &st) == 0 { try TreeRemover.remove(staging) }
        stageStarted = false
        stagedMoved = nil
        try record(self)
    }

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
            try makeSnapshotFolder(record: record)
            asideDone = true
            try record(self)
            guard mkdir(aside, 0o700) == 0 else {
                throw BackupError.failed("cannot create \(aside): \(Errno.last.description)")
            }
            // Names as bytes (RawNames): a name that is not UTF-8 moves like any other; the journal
            // keeps each as RawNames.key.
            for n in try RawNames.list(live) {
                let key = RawNames.key(n)
                guard !leftInPlace.contains(key) && key != Self.snapshotFolder else { continue }
                moved.append(key)
                try record(self)
                guard RawNames.move(n, from: live, to: aside) else {
                    throw BackupError.failed("cannot move \(live)/\(RawNames.display(n)) aside: \(Errno.last.description)")
                }
            }
            allMoved = true
            try record(self)
        }
    }

    /// After extraction: carries the kept folders from the previous tree into the restored one.
    mutating package func carryKept(record: (TreeSwap) throws -> Void, log: (LogLevel, String) -> Void) throws {
        guard mode != .create else { return }
        for rel in keep {
            let src = aside + "/" + rel, dst = live + "/" + rel
            var st = stat()
            guard lstat(src, &st) == 0 else { continue }
            if lstat(dst, &st) == 0 {
                log(.warning, "warning: \(dst) came from the archive too; the previous one stays in \(src)")
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
        // What is still in the staging folder was never live (a `contents` swap's entries already
        // moved in are removed below with the rest of the restored tree).
        try dropStaging(record: record)
        var st = stat()
        func exists(_ p: String) -> Bool { lstat(p, &st) == 0 }
        guard asideDone else {
            if madeSnapshotFolder && rmdir(live + "/" + Self.snapshotFolder) == 0 {
                madeSnapshotFolder = false
                try record(self)
            }
            return
        }
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
            // Only the restored tree (staged in, or, by an older version, extracted in place).
            if exists(live) && (staging == nil || stagedIn == true) { try TreeRemover.remove(live) }
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
                for n in try RawNames.list(live) {
                    let key = RawNames.key(n)
                    guard !leftInPlace.contains(key) && key != Self.snapshotFolder else { continue }
                    try RawNames.removeTree(live, n)
                }
            }
            for key in moved.reversed() {
                let n = RawNames.bytes(key)
                if RawNames.exists(aside, n) {
                    if RawNames.exists(live, n) { try RawNames.removeTree(live, n) }
                    guard RawNames.move(n, from: aside, to: live) else {
                        throw BackupError.failed("cannot move \(aside)/\(RawNames.display(n)) back to \(live): \(Errno.last.description)")
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
        stagedIn = nil
        try record(self)
    }
}
