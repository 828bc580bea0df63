import Digest
#if canImport(Glibc)
import Glibc
#endif

/// A member's data compressed ahead of its place in the archive: what is written to it is
/// hashed (SHA-256), counted, and compressed on its own threads into a raw deflate segment in a
/// spool file (0600), for `ArchiveBuilder.addSpooled` to splice in later. Used for dump.sql, so
/// the database dump is compressed while the files are archived instead of after them. One
/// writer thread at a time.
public final class MemberSpool {
    public struct Result: Sendable {
        public var length: UInt64
        public var compressedLength: UInt64
        public var crc: UInt
        public var tail: [UInt8]
        public var sha256: String
    }

    public let path: String
    private let file: FileSink
    private let deflate: ParallelGzipWriter
    private let digest: SHA256
    public private(set) var result: Result?
    public var bytesIn: UInt64 { deflate.bytesIn }

    public init(path: String, level: Int, threads: Int) throws {
        self.path = path
        file = try FileSink(path: path, permissions: 0o600, exclusive: true, syncOnFinish: false)
        deflate = try ParallelGzipWriter(downstream: file, level: level, threadCount: threads > 0 ? threads : nil,
                                         framing: .rawSegment)
        digest = try SHA256()
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        try digest.update(bytes)
        try deflate.write(bytes)
    }

    /// Reads `fd` to its end into the spool; `onProgress` gets the bytes so far.
    public func drain(fd: Int32, checkInterrupted: (() throws -> Void)? = nil, onProgress: ((UInt64) -> Void)? = nil) throws {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 * 1024, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            try checkInterrupted?()
            let n = read(fd, buffer.baseAddress, buffer.count)
            if n < 0 {
                if errno == EINTR { continue }
                throw StreamError.system(operation: "read the database dump", errno: errno, path: nil)
            }
            if n == 0 { return }
            try write(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            onProgress?(deflate.bytesIn)
        }
    }

    /// Ends the segment and closes the spool file.
    @discardableResult
    public func finish() throws -> Result {
        try deflate.finish()
        let r = Result(length: deflate.bytesIn, compressedLength: file.bytesWritten, crc: deflate.crc,
                       tail: deflate.tail, sha256: try digest.finalizeHex())
        result = r
        return r
    }
}
