import Foundation
import MSBKit
import MSBDatabase
#if canImport(Glibc)
import Glibc
#endif

/// MAAS 3.5+ boot images (README "Boot images"): the image rows of the pinned snapshot decide
/// which files of /var/lib/maas/image-storage the archive holds (`images` in the config).
extension BackupPipeline {
    /// The image store's archive member ("var/lib/maas/image-storage").
    package var imageStoreMember: String { member(of: config.live(BootImages.storePath)) }

    /// Members of the image files `files` that `images` leaves out.
    package func leftOutMembers(_ files: [BootImageFile]) -> Set<String> {
        Set(BootImages.leftOut(files, mode: config.images).map { imageStoreMember + "/" + $0 })
    }

    /// Preflight: the members the backup will leave out, from the image rows as they are now.
    package func plannedLeftOut(pg: PostgresAdapter, passfile: String?) -> (Set<String>, Int64) {
        guard config.images != .all, let rows = pg.liveBootImageRows(passfile: passfile) else { return ([], 0) }
        let files = BootImages.files(from: rows)
        let names = BootImages.leftOut(files, mode: config.images)
        return (leftOutMembers(files), files.filter { names.contains($0.name) }.reduce(0) { $0 + $1.size })
    }
}

extension RunState {
    /// Inside the window, once the database is pinned: the image files of the pinned snapshot.
    mutating package func readImageRows(_ pg: PostgresAdapter) throws {
        guard let pin = pins.first(where: { $0.database == target.maasDatabase }) else { return }
        imageFiles = try pg.bootImageRows(pin).map(BootImages.files(from:))
        imagesLeftOut = pipeline.leftOutMembers(imageFiles ?? [])
    }

    /// The manifest's `images`: each file, archived when the walk wrote it (nil without image rows).
    package func manifestImages(records: [FileRecord]) -> BootImages? {
        guard let files = imageFiles else { return nil }
        let store = pipeline.imageStoreMember
        let written = Set(records.filter { $0.type == .file || $0.type == .hardlink }.map(\.path))
        return BootImages(mode: config.images.rawValue, files: files.map { f in
            var g = f
            g.archived = written.contains(store + "/" + f.name)
            return g
        })
    }

    /// The window's copy of a small path (not on Btrfs or LVM) into the staging folder, without
    /// the image files left out: folders on the way to them are made (owner, mode and time kept
    /// once their contents are in), everything else goes through `cp -a`.
    package func copyFiltered(_ live: String, to dest: String) async throws {
        let member = pipeline.member(of: live)
        let below = imagesLeftOut.contains { $0.hasPrefix(member + "/") }
        var st = stat()
        guard below, lstat(live, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
            if imagesLeftOut.contains(member) { return }
            return try await cpA([live], into: dest, target: false)
        }
        guard mkdir(dest, 0o700) == 0 || errno == EEXIST else {
            throw BackupError.failed("cannot create \(dest): \(Errno.last.description)")
        }
        var plain: [String] = []
        for n in try FileManager.default.contentsOfDirectory(atPath: live).sorted() {
            let m = member + "/" + n
            if imagesLeftOut.contains(m) { continue }
            if imagesLeftOut.contains(where: { $0.hasPrefix(m + "/") }) {
                try await copyFiltered(live + "/" + n, to: dest + "/" + n)
            } else {
                plain.append(live + "/" + n)
            }
        }
        if !plain.isEmpty { try await cpA(plain, into: dest, target: true) }
        _ = lchown(dest, st.st_uid, st.st_gid)
        _ = chmod(dest, st.st_mode & 0o7777)
        var times = [st.st_atim, st.st_mtim]
        _ = utimensat(AT_FDCWD, dest, &times, AT_SYMLINK_NOFOLLOW)
    }

    private func cpA(_ sources: [String], into dest: String, target: Bool) async throws {
        guard let cp = Command.find("cp") else { throw BackupError.unavailable("cp was not found") }
        let args = target ? ["-a", "--target-directory=" + dest, "--"] + sources : ["-a", "--no-target-directory", "--"] + sources + [dest]
        let r = try await Command.run(cp, args)
        guard r.succeeded else { throw BackupError.failed("copying \(sources.first ?? dest) in the window failed: \(r.lastErrorLine)") }
    }
}
