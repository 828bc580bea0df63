import CZlib

/// A single-threaded gzip filter: compresses what is written to it and writes one gzip member
/// (zlib's gzip wrapper: mtime 0, OS 3) to `downstream`.
///
/// `finish()` ends the gzip stream and then finishes `downstream`. After any error the writer
/// is failed: every later `write`/`finish` throws the same error and `downstream` is not
/// finished. Not thread-safe: use one writer from one thread at a time.
public final class GzipWriter: ByteSink {
    public let downstream: any ByteSink
    public let level: Int
    /// Uncompressed bytes written so far.
    public private(set) var bytesIn: UInt64 = 0
    /// Compressed bytes passed to `downstream` so far.
    public private(set) var bytesOut: UInt64 = 0

    private var stream: UnsafeMutablePointer<z_stream>?
    private let buffer: UnsafeMutablePointer<UInt8>
    private let bufferSize: Int
    private var failure: (any Error)?
    private var finished = false

    /// - Parameters:
    ///   - level: zlib level 0...9 (6 is gzip's default).
    ///   - bufferSize: size of the output buffer handed to `downstream` in one write.
    public init(downstream: any ByteSink, level: Int = 6, bufferSize: Int = 128 * 1024) throws {
        guard bufferSize >= 64 else { throw StreamError.invalidArgument("buffer size \(bufferSize) is below 64") }
        self.downstream = downstream
        self.level = level
        self.stream = try Deflate.makeStream(level: level, windowBits: 15 + 16)
        self.bufferSize = bufferSize
        self.buffer = .allocate(capacity: bufferSize)
    }

    deinit {
        if let stream { Deflate.end(stream) }
        buffer.deallocate()
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        try checkUsable()
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        do {
            var offset = 0
            // avail_in is a 32-bit uInt: feed huge buffers in slices.
            while offset < bytes.count {
                let n = min(bytes.count - offset, 1 << 30)
                try deflateAll(UnsafeMutableRawPointer(mutating: base + offset), count: n, flush: Z_NO_FLUSH)
                offset += n
            }
            bytesIn += UInt64(bytes.count)
        } catch {
            failure = error
            throw error
        }
    }

    public func finish() throws {
        try checkUsable()
        do {
            try deflateAll(nil, count: 0, flush: Z_FINISH)
            finished = true
            if let stream { Deflate.end(stream) }
            stream = nil
            try downstream.finish()
        } catch {
            failure = error
            throw error
        }
    }

    private func checkUsable() throws {
        if let failure { throw failure }
        if finished { throw StreamError.alreadyFinished }
    }

    /// Runs deflate over the input until it is consumed (and, for Z_FINISH, the stream ended),
    /// passing every full or final output buffer downstream.
    private func deflateAll(_ input: UnsafeMutableRawPointer?, count: Int, flush: Int32) throws {
        guard let stream else { throw StreamError.alreadyFinished }
        stream.pointee.next_in = input?.assumingMemoryBound(to: Bytef.self)
        stream.pointee.avail_in = uInt(count)
        defer {
            stream.pointee.next_in = nil
            stream.pointee.avail_in = 0
        }
        while true {
            stream.pointee.next_out = buffer
            stream.pointee.avail_out = uInt(bufferSize)
            let rc = CZlib.deflate(stream, flush)
            // Z_BUF_ERROR only means "no progress possible", which the loop condition covers.
            guard rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR else {
                throw Deflate.error("deflate", rc, stream)
            }
            let produced = bufferSize - Int(stream.pointee.avail_out)
            if produced > 0 {
                try downstream.write(UnsafeRawBufferPointer(start: buffer, count: produced))
                bytesOut += UInt64(produced)
            }
            if flush == Z_FINISH {
                if rc == Z_STREAM_END { return }
            } else if stream.pointee.avail_in == 0 && stream.pointee.avail_out != 0 {
                return
            }
        }
    }
}
