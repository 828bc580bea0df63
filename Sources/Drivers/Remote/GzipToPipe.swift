import CZlib
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
    struct Counts: Sendable { var compressed: Int64; var uncompressed: Int64 }

    static func pump(from input: Int32, to output: Int32, archive: String) throws -> Counts {
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        // 15 + 32: zlib or gzip header detected automatically.
        guard inflateInit2_(stream, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            stream.deinitialize(count: 1)
            stream.deallocate()
            throw BackupError.failed("inflateInit2 failed (out of memory?)")
        }
        defer {
            inflateEnd(stream)
            stream.deinitialize(count: 1)
            stream.deallocate()
        }
        let inSize = 256 * 1024, outSize = 1024 * 1024
        let inBuf = UnsafeMutablePointer<UInt8>.allocate(capacity: inSize)
        let outBuf = UnsafeMutablePointer<UInt8>.allocate(capacity: outSize)
        defer { inBuf.deallocate(); outBuf.deallocate() }
        var counts = Counts(compressed: 0, uncompressed: 0)
        var members = 0, inMember = false, eof = false
        func damaged(_ what: String) -> BackupError {
            BackupError.data("\(archive) is damaged: \(what); nothing was copied",
                             hint: "the archive cannot be trusted: run `maas-snapshot-backup verify` on it and copy another backup")
        }
        while true {
            if stream.pointee.avail_in == 0 && !eof {
                let n = read(input, inBuf, inSize)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw BackupError.failed("cannot read \(archive): \(String(cString: strerror(errno)))")
                }
                if n == 0 { eof = true } else {
                    counts.compressed += Int64(n)
                    stream.pointee.next_in = inBuf
                    stream.pointee.avail_in = UInt32(n)
                }
            }
            if stream.pointee.avail_in == 0 && eof {
                if inMember { throw damaged("the gzip stream ends early (truncated)") }
                if members == 0 { throw damaged("the file is empty") }
                return counts
            }
            if !inMember {
                if stream.pointee.next_in[0] != 0x1f {
                    throw damaged(members == 0 ? "not a gzip file" : "unexpected bytes after the end of the gzip stream")
                }
                inMember = true
            }
            stream.pointee.next_out = outBuf
            stream.pointee.avail_out = UInt32(outSize)
            let rc = inflate(stream, Z_NO_FLUSH)
            let produced = outSize - Int(stream.pointee.avail_out)
            switch rc {
            case Z_OK, Z_BUF_ERROR, Z_STREAM_END:
                if rc == Z_BUF_ERROR && eof && stream.pointee.avail_in == 0 && produced == 0 {
                    throw damaged("the gzip stream ends early (truncated)")
                }
            default:
                let msg = stream.pointee.msg.map { String(cString: $0) } ?? "zlib error \(rc)"
                throw damaged(msg == "incorrect data check" ? "gzip CRC-32 mismatch" : msg)
            }
            // Written before the member's end is accepted: a CRC error above stops the stream first.
            try writeAll(output, outBuf, produced)
            counts.uncompressed += Int64(produced)
            if rc == Z_STREAM_END {
                members += 1
                inMember = false
                guard inflateReset(stream) == Z_OK else { throw damaged("inflateReset failed") }
            }
        }
    }

    static func writeAll(_ fd: Int32, _ buf: UnsafeMutablePointer<UInt8>, _ count: Int) throws {
        var off = 0
        while off < count {
            let n = write(fd, buf + off, count - off)
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EPIPE { throw BackupError.failed("restic stopped reading the archive stream") }
                throw BackupError.failed("cannot write the archive stream to restic: \(String(cString: strerror(errno)))")
            }
            off += n
        }
    }
}
