import Foundation
import MSBKit
import MSBArchive
#if canImport(Glibc)
import Glibc
#endif

/// The MAAS 3.5+ image store on a restore over a live region: the archive holds the uploaded image
/// files (by default), the live store holds every image MAAS has now. After extraction the live
/// store's files are moved (renamed on the same filesystem: never copied, never deleted) into the
/// restored store, beside the files the archive brought, so MAAS has its images at once. A file
/// the archive brought too stays where it was (in the aside folder). Undo moves them back.
extension TreeSwap {
    /// The store relative to `member`'s folder when the manifest lists image files below it.
    static package func imageStore(of manifest: Manifest, member: String) -> String? {
        // The fixed path, never the manifest's `store` (an archive's manifest is not trusted with paths).
        guard manifest.images != nil else { return nil }
        let store = ArchiveVerifier.member(of: BootImages.storePath)
        return store.hasPrefix(member + "/") ? String(store.dropFirst(member.count + 1)) : nil
    }

    /// Moves the previous store's files into the restored store; each name is recorded before it moves.
    mutating package func carryImages(record: (TreeSwap) throws -> Void, log: (LogLevel, String) -> Void) throws {
        guard mode != .create else { return }
        guard let rel = imageStore else {
            // A MAAS 3.4 archive (no image list) over a 3.5 store: the store stays aside, not for ever.
            let store = ArchiveVerifier.member(of: BootImages.storePath)
            if store.hasPrefix(member + "/"), FileManager.default.fileExists(atPath: aside + "/" + store.dropFirst(member.count + 1)) {
                log(.info, "the previous MAAS image store stays in \(aside)/\(store.dropFirst(member.count + 1)) (this backup lists no image files: MAAS 3.4); prune removes it once older than retention.max_age_days")
            }
            return
        }
        let src = aside + "/" + rel, dst = live + "/" + rel
        var st = stat()
        guard lstat(src, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { return }
        var dt = stat()
        if lstat(dst, &dt) != 0 {
            try FileManager.default.createDirectory(atPath: (dst as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
            guard mkdir(dst, st.st_mode & 0o7777) == 0 else {
                throw BackupError.failed("cannot create \(dst): \(Errno.last.description)")
            }
            _ = lchown(dst, st.st_uid, st.st_gid)
        } else if (dt.st_mode & S_IFMT) != S_IFDIR {
            log(.warning, "warning: \(dst) is not a folder in the archive; the previous image store stays in \(src)")
            return
        }
        var moved = carriedImages ?? [], kept = 0
        for n in try FileManager.default.contentsOfDirectory(atPath: src).sorted() where !moved.contains(n) {
            if lstat(dst + "/" + n, &dt) == 0 { kept += 1; continue }
            moved.append(n)
            carriedImages = moved
            try record(self)
            guard rename(src + "/" + n, dst + "/" + n) == 0 else {
                throw BackupError.failed("cannot move the image file \(src)/\(n) into the restored \(dst): \(Errno.last.description)")
            }
        }
        if !moved.isEmpty {
            log(.info, "moved \(moved.count) image file(s) of the live store into the restored \(dst)" + (kept > 0 ? " (\(kept) came from the archive)" : ""))
        }
    }

    /// Moves the carried image files back into the previous store (before the restored tree goes).
    mutating package func undoImages(record: (TreeSwap) throws -> Void) throws {
        guard let rel = imageStore, var names = carriedImages, !names.isEmpty else { return }
        let src = live + "/" + rel, dst = aside + "/" + rel
        var st = stat()
        while let n = names.last {
            if lstat(src + "/" + n, &st) == 0 && lstat(dst + "/" + n, &st) != 0 {
                guard rename(src + "/" + n, dst + "/" + n) == 0 else {
                    throw BackupError.failed("cannot move the image file \(src)/\(n) back to \(dst): \(Errno.last.description)")
                }
            }
            names.removeLast()
            carriedImages = names
            try record(self)
        }
    }
}
