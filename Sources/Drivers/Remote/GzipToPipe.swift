import Streams
import Foundation
import MSBKit
#if canImport(Glibc)
import Glibc
#endif

/// Decompresses a gzip file (one or more members, as gzip and pigz write) from one descriptor
/// into another: the bridge that gives restic the uncompressed tar, which it deduplicates across
/// days. Blocking: run it on its own thread. Throws BackupError.data for a damaged or truncated
/// archive (zlib checks every member's CRC-32 and length) and BackupError.failed when the reader
/// goes away (EPIPE).
enum GzipToPipe {
    typealias Counts = GzipReader.Counts

    static func pump(from input: Int32, to output: Int32, archive: String) throws -> Counts {
        do {
            return try GzipReader.read(fd: input, onData: { try writeAll(output, $0) })
        } catch let d as GzipReader.Damage {
            throw BackupError.data("\(archive) is damaged: \(d.what); nothing was copied",
                                   hint: "the archive cannot be trusted: run `maas-snapshot-backup verify` on it and copy another backup")
        } catch let e as StreamError {
            throw BackupError.failed("cannot read \(archive): \(e)")
        }
    }

    static func writeAll(_ fd: Int32, _ chunk: UnsafeRawBufferPointer) throws {
        do { try Errno.writeAll(fd, chunk) } catch {
            if error == .brokenPipe { throw BackupError.failed("restic stopped reading the archive stream") }
            throw BackupError.failed("cannot write the archive stream to restic: \(error.description)")
        }
    }
}
