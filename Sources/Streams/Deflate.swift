import CZlib

/// Shared zlib plumbing for the gzip writers.
enum Deflate {
    /// zlib's default compression level (what `Z_DEFAULT_COMPRESSION` means).
    static let defaultLevel = 6

    static func checkLevel(_ level: Int) throws {
        guard (0...9).contains(level) else {
            throw StreamError.invalidArgument("compression level \(level) is not in 0...9")
        }
    }

    /// A heap-allocated `z_stream` initialised for deflate. `windowBits` is -15 for raw deflate
    /// and 31 for zlib's own gzip wrapper. Free with `end(_:)`.
    ///
    /// zlib's `deflateInit2` is a macro Swift does not import: this calls `deflateInit2_` with
    /// the header's version and the struct size, exactly as the macro does.
    static func makeStream(level: Int, windowBits: Int32) throws -> UnsafeMutablePointer<z_stream> {
        try checkLevel(level)
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let rc = deflateInit2_(stream, Int32(level), Z_DEFLATED, windowBits, 8, Z_DEFAULT_STRATEGY,
                               ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard rc == Z_OK else {
            let error = StreamError.zlib(operation: "deflateInit2", code: rc, message: message(stream))
            stream.deinitialize(count: 1)
            stream.deallocate()
            throw error
        }
        return stream
    }

    static func end(_ stream: UnsafeMutablePointer<z_stream>) {
        _ = deflateEnd(stream)
        stream.deinitialize(count: 1)
        stream.deallocate()
    }

    static func message(_ stream: UnsafeMutablePointer<z_stream>) -> String? {
        stream.pointee.msg.map { String(cString: $0) }
    }

    static func error(_ operation: String, _ code: Int32, _ stream: UnsafeMutablePointer<z_stream>) -> StreamError {
        .zlib(operation: operation, code: code, message: message(stream))
    }

    /// The gzip header's XFL byte for `level` (RFC 1952: 2 = best compression, 4 = fastest).
    static func extraFlags(level: Int) -> UInt8 {
        level == 9 ? 2 : (level == 1 ? 4 : 0)
    }
}
