import MSBKit
import Streams
import Digest
#if canImport(Glibc)
import Glibc
#endif

/// Reads a gzip file to its end through zlib in gzip mode, which checks every member's CRC-32
/// and length (libarchive's gzip reader does not check the trailer). Also hashes the compressed
/// bytes (for the `.verified` stamp).
package enum GzipIntegrity {
    package struct Result: Sendable {
        package var compressedBytes: Int64
        package var uncompressedBytes: Int64
        package var members: Int
        package var sha256: String
    }

    /// Throws BackupError.data naming what is wrong (bad CRC, truncated, trailing bytes).
    static package func check(path: String, checkInterrupted: () throws -> Void = {}) throws -> Result {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw BackupError.data("cannot open \(path): \(Errno.last.description)")
        }
        defer { close(fd) }
        let digest = try SHA256()
        let counts: GzipReader.Counts
        do {
            counts = try GzipReader.read(fd: fd, checkInterrupted: checkInterrupted, onCompressed: { try digest.update($0) })
        } catch let d as GzipReader.Damage {
            throw BackupError.data("\(path) is damaged: \(d)", hint: "the archive cannot be trusted; use another backup")
        } catch let e as StreamError {
            throw BackupError.data("cannot read \(path): \(e)")
        }
        return Result(compressedBytes: counts.compressed, uncompressedBytes: counts.uncompressed, members: counts.members,
                      sha256: try digest.finalizeHex())
    }
}
