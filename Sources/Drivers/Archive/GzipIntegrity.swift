import MSBKit
import CZlib
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
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        // 15 + 16: a gzip wrapper only; zlib checks the trailer's CRC-32 and ISIZE.
        guard inflateInit2_(stream, 15 + 16, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            stream.deallocate()
            throw BackupError.failed("inflateInit2 failed")
        }
        defer {
            inflateEnd(stream)
            stream.deinitialize(count: 1)
            stream.deallocate()
        }
        let inSize = 256 * 1024, outSize = 1024 * 1024
        let input = UnsafeMutablePointer<UInt8>.allocate(capacity: inSize)
        let output = UnsafeMutablePointer<UInt8>.allocate(capacity: outSize)
        defer { input.deallocate(); output.deallocate() }
        var compressed: Int64 = 0, uncompressed: Int64 = 0, members = 0
        var inMember = false, eof = false
        func damaged(_ what: String) -> BackupError {
            BackupError.data("\(path) is damaged: \(what) (at compressed byte \(compressed - Int64(stream.pointee.avail_in)))",
                             hint: "the archive cannot be trusted; use another backup")
        }
        while true {
            if stream.pointee.avail_in == 0 && !eof {
                try checkInterrupted()
                let n = read(fd, input, inSize)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw BackupError.data("cannot read \(path): \(Errno.last.description)")
                }
                if n == 0 { eof = true } else {
                    try digest.update(UnsafeRawBufferPointer(start: input, count: n))
                    compressed += Int64(n)
                    stream.pointee.next_in = input
                    stream.pointee.avail_in = UInt32(n)
                }
            }
            if stream.pointee.avail_in == 0 && eof {
                if inMember { throw damaged("the gzip stream ends early (truncated)") }
                if members == 0 { throw damaged("the file is empty") }
                break
            }
            if !inMember {
                // A new member must start with the gzip magic; anything else is trailing garbage.
                if stream.pointee.next_in[0] != 0x1f {
                    throw damaged(members == 0 ? "not a gzip file" : "unexpected bytes after the end of the gzip stream")
                }
                inMember = true
            }
            stream.pointee.next_out = output
            stream.pointee.avail_out = UInt32(outSize)
            let rc = inflate(stream, Z_NO_FLUSH)
            uncompressed += Int64(outSize - Int(stream.pointee.avail_out))
            switch rc {
            case Z_OK, Z_BUF_ERROR:
                if rc == Z_BUF_ERROR && eof && stream.pointee.avail_in == 0 {
                    throw damaged("the gzip stream ends early (truncated)")
                }
            case Z_STREAM_END:
                members += 1
                inMember = false
                guard inflateReset(stream) == Z_OK else { throw damaged("inflateReset failed") }
            default:
                let msg = stream.pointee.msg.map { String(cString: $0) } ?? "zlib error \(rc)"
                throw damaged(msg == "incorrect data check" ? "gzip CRC-32 mismatch (incorrect data check)" : msg)
            }
        }
        return Result(compressedBytes: compressed, uncompressedBytes: uncompressed, members: members,
                      sha256: try digest.finalizeHex())
    }
}
