import Foundation
import MSBKit
import LibArchive
#if canImport(Glibc)
import Glibc
#endif

/// Extracts the archive's file members below `root` with libarchive's disk writer: owners by name,
/// modes and times, refusing `..`, absolute paths and writing through symlinks.
package enum Extractor {
    /// Extracts members below one of `members` (e.g. "etc/maas"); dump.sql and manifest.json are skipped.
    static package func extract(archive: String, root: String, members: [String], checkInterrupted: () throws -> Void) throws -> Int {
        // libarchive refuses absolute paths (SECURE_NOABSOLUTEPATHS), so the paths are made relative to
        // the root, which becomes the working folder for the extraction.
        let cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard chdir(root) == 0 else {
            if cwd >= 0 { close(cwd) }
            throw BackupError.failed("cannot enter \(root): \(Errno.last.description)")
        }
        defer {
            if cwd >= 0 { _ = fchdir(cwd); close(cwd) } else { _ = chdir("/") }
        }
        var count = 0
        do {
            let reader = try TarReader(path: archive)
            let writer = try DiskWriter(restoreOwners: true)
            while let h = try reader.nextHeader() {
                try checkInterrupted()
                guard members.contains(where: { h.path == $0 || h.path.hasPrefix($0 + "/") }) else {
                    try reader.skipData()
                    continue
                }
                // Only what the backup writes: files, folders, symlinks, hard links (verify refuses the rest too).
                guard h.kind != .other else {
                    throw BackupError.data("the archive's member \(h.path) is a device, FIFO or socket: not extracted")
                }
                try writer.writeHeader(from: reader, pathPrefix: ".")
                if h.kind == .file {
                    try reader.forEachChunk { try writer.writeData($0) }
                }
                try writer.finishEntry()
                count += 1
            }
            try writer.close()
        } catch let e as ArchiveError {
            throw BackupError.failed("extracting the archive failed: \(e.message)")
        }
        return count
    }
}
