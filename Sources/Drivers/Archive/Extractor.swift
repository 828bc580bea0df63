import Foundation
import MSBKit
import LibArchive
#if canImport(Glibc)
import Glibc
#endif

/// Extracts the archive's file members below `root` with libarchive's disk writer: owners by name,
/// modes and times, refusing `..`, absolute paths and writing through symlinks.
package enum Extractor {
    /// Extracts each member's tree (e.g. "var/lib/maas" and what is below it) to its destination,
    /// a path relative to `root` (e.g. "var/lib/maas.restoring-20261204T101010Z"): restore stages
    /// the archive's copy beside the live folder while MAAS runs. Hard link targets are moved alike.
    static package func extract(archive: String, root: String, into destinations: [(member: String, destination: String)],
                                checkInterrupted: () throws -> Void) throws -> Int {
        let maps = destinations.map { (member: Array($0.member.utf8), destination: Array($0.destination.utf8)) }
        /// The destination of a member path (raw bytes), or nil when it is below none of the members.
        func destination(of path: [UInt8]) -> [UInt8]? {
            for m in maps where path.starts(with: m.member) {
                if path.count == m.member.count { return m.destination }
                if path[m.member.count] == UInt8(ascii: "/") { return m.destination + path[m.member.count...] }
            }
            return nil
        }
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
                guard destination(of: h.rawPath) != nil else {
                    try reader.skipData()
                    continue
                }
                // Only what the backup writes: files, folders, symlinks, hard links (verify refuses the rest too).
                guard h.kind != .other else {
                    throw BackupError.data("the archive's member \(h.path) is a device, FIFO or socket: not extracted")
                }
                try writer.writeHeader(from: reader, pathPrefix: ".", mapPath: { destination(of: $0) ?? $0 })
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
