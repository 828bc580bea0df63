import CZlib
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads a gzip file (one or more members, as gzip and pigz write) from a descriptor to its end
/// through zlib in gzip mode, which checks every member's CRC-32 and length (libarchive's gzip
/// reader does not check the trailer). Strict: nothing but gzip members, none cut short.
/// Blocking: run it on its own thread. The one gzip reader of the program (verify, the restic copy).
public enum GzipReader {
    public struct Counts: Sendable, Equatable {
        public var compressed: Int64 = 0
        public var uncompressed: Int64 = 0
        public var members = 0
        public init() {}
    }

    /// Why the stream is not a complete gzip file.
    public struct Damage: Error, Sendable, CustomStringConvertible {
        /// "the gzip stream ends early (truncated)", "gzip CRC-32 mismatch (incorrect data check)", ...
        public var what: String
        /// The compressed byte where it was found.
        public var offset: Int64
        public var description: String { "\(what) (at compressed byte \(offset))" }
    }

    /// Reads `fd` to its end. `onCompressed` sees each chunk read, `onData` each decompressed chunk
    /// (a member's data before its trailer is checked: a caller that forwards it must treat a
    /// throw as "everything forwarded is void"). Throws `Damage`, `StreamError.system` for a failed
    /// read, or whatever the callbacks throw.
    public static func read(fd: Int32, checkInterrupted: () throws -> Void = {},
                            onCompressed: (UnsafeRawBufferPointer) throws -> Void = { _ in },
                            onData: (UnsafeRawBufferPointer) throws -> Void = { _ in }) throws -> Counts {
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        // 15 + 16: a gzip wrapper only; zlib checks the trailer's CRC-32 and ISIZE.
        let rc0 = inflateInit2_(stream, 15 + 16, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard rc0 == Z_OK else {
            stream.deinitialize(count: 1)
            stream.deallocate()
            throw StreamError.zlib(operation: "inflateInit2", code: rc0, message: nil)
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
        var counts = Counts()
        var inMember = false, eof = false
        func damaged(_ what: String) -> Damage { Damage(what: what, offset: counts.compressed - Int64(stream.pointee.avail_in)) }
        while true {
            if stream.pointee.avail_in == 0 && !eof {
                try checkInterrupted()
                let n = Glibc.read(fd, input, inSize)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw StreamError.system(operation: "read", errno: errno, path: nil)
                }
                if n == 0 { eof = true } else {
                    try onCompressed(UnsafeRawBufferPointer(start: input, count: n))
                    counts.compressed += Int64(n)
                    stream.pointee.next_in = input
                    stream.pointee.avail_in = UInt32(n)
                }
            }
            if stream.pointee.avail_in == 0 && eof {
                if inMember { throw damaged("the gzip stream ends early (truncated)") }
                if counts.members == 0 { throw damaged("the file is empty") }
                return counts
            }
            if !inMember {
                // A new member must start with the gzip magic; anything else is trailing garbage.
                if stream.pointee.next_in[0] != 0x1f {
                    throw damaged(counts.members == 0 ? "not a gzip file" : "unexpected bytes after the end of the gzip stream")
                }
                inMember = true
            }
            stream.pointee.next_out = output
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
                throw damaged(msg == "incorrect data check" ? "gzip CRC-32 mismatch (incorrect data check)" : msg)
            }
            if produced > 0 { try onData(UnsafeRawBufferPointer(start: output, count: produced)) }
            counts.uncompressed += Int64(produced)
            if rc == Z_STREAM_END {
                counts.members += 1
                inMember = false
                guard inflateReset(stream) == Z_OK else { throw damaged("inflateReset failed") }
            }
        }
    }
}
