import CZlib

/// A gzip filter compressing on several threads, by pigz's method.
///
/// The input is cut into independent blocks of `blockSize` bytes. Each block is compressed by
/// a worker thread as raw deflate, primed with the previous 32 KiB of input as its dictionary
/// (`deflateSetDictionary`) so the ratio stays close to single-threaded gzip, and ends with
/// `Z_SYNC_FLUSH` (the last block with `Z_FINISH`), so the compressed blocks simply concatenate
/// into one deflate stream. The output is one gzip member: a 10-byte header, the blocks in
/// input order, then the CRC-32 (per-block CRCs joined with `crc32_combine`) and ISIZE.
///
/// Threads and memory: `threadCount` worker threads (pthreads) take blocks from a queue.
/// At most `maxBlocksInFlight` blocks exist at once (the one being filled plus those queued,
/// being compressed, or compressed and waiting to be written); when all are in use, `write`
/// waits for the oldest block, writes it downstream and reuses it (back-pressure).
/// Memory is about `maxBlocksInFlight * (blockSize + 32 KiB + deflateBound(blockSize))` plus
/// ~270 KiB of zlib state per thread.
///
/// Only the calling thread touches `downstream`: completed blocks are written out, in order, by
/// `write` and `finish`. So `downstream` need not be thread-safe, and its errors are thrown
/// straight from the `write`/`finish` that hit them.
///
/// Errors: a worker's zlib error is thrown by the next `write` or `finish`. After any error the
/// writer is failed: its workers are stopped, every later call throws the same error, and
/// `downstream` is not finished.
///
/// Spliced members (`appendRawDeflate`): a deflate segment compressed earlier, elsewhere (by a
/// writer with `framing: .rawSegment`, e.g. the database dump while the files were archived),
/// is copied into the stream between two blocks. It is valid because every block ends on a
/// byte boundary with a sync flush, and a segment compressed without a dictionary simply makes
/// no back-references into what precedes it. The output stays one gzip member.
///
/// The writer itself is not thread-safe: use it from one thread at a time.
public final class ParallelGzipWriter: ByteSink {
    /// What the writer puts around the deflate blocks.
    public enum Framing: Sendable {
        /// A gzip member: header, blocks, the last one final, CRC-32 and ISIZE.
        case gzip
        /// Raw deflate only, every block sync-flushed and none final: a segment to splice into
        /// another writer's stream with `appendRawDeflate`. `crc` and `tail` describe its input.
        case rawSegment
    }

    public static let defaultBlockSize = 128 * 1024
    /// Deflate's window: the dictionary each block is primed with.
    public static let dictionarySize = 32 * 1024

    public let downstream: any ByteSink
    public let level: Int
    public let threadCount: Int
    public let blockSize: Int
    public let maxBlocksInFlight: Int
    public let framing: Framing
    /// Uncompressed bytes written so far.
    public private(set) var bytesIn: UInt64 = 0
    /// Compressed bytes passed to `downstream` so far (header and trailer included).
    public private(set) var bytesOut: UInt64 = 0

    private let pool: DeflatePool
    /// Submitted blocks not yet written downstream, in input order.
    private var inFlight: [DeflateBlock] = []
    /// Blocks written out and ready for reuse.
    private var spare: [DeflateBlock] = []
    private var allocatedBlocks = 0
    private var nextSequence = 0
    /// The block being filled.
    private var current: DeflateBlock?
    /// The last (up to) 32 KiB of input submitted so far: the next block's dictionary.
    private let history: UnsafeMutablePointer<UInt8>
    private var historyLength = 0
    /// Blocks written as deflate's stored blocks, since their sample did not compress (`StoredBlocks.swift`).
    public var storedBlocks: Int { pool.storedBlocks }
    /// CRC-32 of the input written so far (complete once `finish` returned).
    public private(set) var crc: UInt = 0
    private var headerWritten = false
    private var failure: (any Error)?
    private var finished = false

    /// Test hook: the worker compressing the block with this sequence number (0-based) reports
    /// a zlib error instead of compressing it.
    var injectedFailureBlock: Int?

    /// - Parameters:
    ///   - level: zlib level 0...9 (6 is gzip's default).
    ///   - threadCount: worker threads; nil means the number of online CPUs.
    ///   - blockSize: bytes per independent block, at least 32 KiB (pigz's minimum).
    ///   - maxBlocksInFlight: memory bound in blocks, at least 2; nil means `2 * threadCount + 2`.
    public init(
        downstream: any ByteSink,
        level: Int = 6,
        threadCount: Int? = nil,
        blockSize: Int = ParallelGzipWriter.defaultBlockSize,
        maxBlocksInFlight: Int? = nil,
        framing: Framing = .gzip
    ) throws {
        let threads = threadCount ?? onlineProcessorCount()
        let inFlightLimit = maxBlocksInFlight ?? (2 * threads + 2)
        try Deflate.checkLevel(level)
        guard threads >= 1 else { throw StreamError.invalidArgument("thread count \(threads) is below 1") }
        guard blockSize >= Self.dictionarySize, blockSize <= 1 << 30 else {
            throw StreamError.invalidArgument("block size \(blockSize) is not in 32 KiB...1 GiB")
        }
        guard inFlightLimit >= 2 else {
            throw StreamError.invalidArgument("max blocks in flight \(inFlightLimit) is below 2")
        }
        self.downstream = downstream
        self.level = level
        self.threadCount = threads
        self.blockSize = blockSize
        self.maxBlocksInFlight = inFlightLimit
        self.framing = framing
        self.pool = try DeflatePool(threadCount: threads, level: level, blockSize: blockSize)
        self.history = .allocate(capacity: Self.dictionarySize)
        do {
            try pool.start()
        } catch {
            pool.stop()
            history.deallocate()
            throw error
        }
    }

    deinit {
        pool.stop()
        history.deallocate()
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        try checkUsable()
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        do {
            if let workerError = pool.failure { throw workerError }
            var offset = 0
            while offset < bytes.count {
                // A full block is submitted only once more input arrives, so that the last
                // block of the stream is always the one `finish` ends with Z_FINISH.
                if let block = current, block.length == blockSize {
                    submit(block, isLast: false)
                    current = nil
                }
                let block: DeflateBlock
                if let current {
                    block = current
                } else {
                    block = try acquireBlock()
                    current = block
                }
                let n = min(bytes.count - offset, blockSize - block.length)
                (block.data + block.length).update(from: (base + offset).assumingMemoryBound(to: UInt8.self), count: n)
                block.length += n
                offset += n
            }
            bytesIn += UInt64(bytes.count)
            try writeCompletedBlocks()
        } catch {
            throw fail(error)
        }
    }

    public func finish() throws {
        try checkUsable()
        do {
            if let workerError = pool.failure { throw workerError }
            switch framing {
            case .gzip:
                let last = try current ?? acquireBlock()
                current = nil
                submit(last, isLast: true)
                try drain()
                var trailer = [UInt8](repeating: 0, count: 8)
                for i in 0..<4 {
                    trailer[i] = UInt8(truncatingIfNeeded: crc >> (8 * i))
                    trailer[4 + i] = UInt8(truncatingIfNeeded: bytesIn >> (8 * i)) // ISIZE: length mod 2^32
                }
                try writeDownstream(trailer)
            case .rawSegment:
                try submitPartial()
                try drain()
            }
            finished = true
            pool.stop()
            try downstream.finish()
        } catch {
            throw fail(error)
        }
    }

    /// The last (up to) 32 KiB of the input written so far: what a following block would be
    /// primed with. A `.rawSegment` writer hands it to the writer it is spliced into.
    public var tail: [UInt8] {
        Array(UnsafeBufferPointer(start: history, count: historyLength))
    }

    /// Splices a raw deflate segment into the stream: the input written so far is compressed
    /// and written out (its last block sync-flushed), then the segment's bytes, read with
    /// `read` until it returns 0, are copied downstream unchanged, and the CRC, the length and
    /// the next block's dictionary continue from the segment's `crc`, `length` and `tail`.
    /// The segment must be what a `.rawSegment` writer produced (sync-flushed, no final block).
    /// Returns the compressed bytes copied. Not for a `.rawSegment` writer itself.
    @discardableResult
    public func appendRawDeflate(length: UInt64, crc segmentCRC: UInt, tail: [UInt8],
                                 read: (UnsafeMutableRawBufferPointer) throws -> Int) throws -> UInt64 {
        try checkUsable()
        guard framing == .gzip else { throw StreamError.invalidArgument("a raw segment writer cannot take a spliced segment") }
        guard tail.count <= Self.dictionarySize else { throw StreamError.invalidArgument("a segment tail is at most 32 KiB") }
        do {
            if let workerError = pool.failure { throw workerError }
            try submitPartial()
            try drain()
            try writeHeaderIfNeeded()
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 * 1024, alignment: 16)
            defer { buffer.deallocate() }
            var copied: UInt64 = 0
            while true {
                let n = try read(buffer)
                if n == 0 { break }
                try downstream.write(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                copied += UInt64(n)
            }
            bytesOut += copied
            crc = crc32_combine(crc, segmentCRC, Int(length))
            bytesIn += length
            if length > 0 {
                // The next block's dictionary: the tail of (what came before + the segment).
                let keep = max(0, min(historyLength, Self.dictionarySize - tail.count))
                let merged = Array(UnsafeBufferPointer(start: history + historyLength - keep, count: keep)) + tail
                historyLength = merged.count
                history.update(from: merged, count: merged.count)
            }
            return copied
        } catch {
            throw fail(error)
        }
    }

    // MARK: - Producer side (the caller's thread)

    private func checkUsable() throws {
        if let failure { throw failure }
        if finished { throw StreamError.alreadyFinished }
    }

    private func fail(_ error: any Error) -> any Error {
        failure = error
        pool.stop()
        return error
    }

    /// A free block primed with the current history as its dictionary. When `maxBlocksInFlight`
    /// blocks exist, waits for the oldest one and writes it out first (back-pressure).
    private func acquireBlock() throws -> DeflateBlock {
        let block: DeflateBlock
        if let reused = spare.popLast() {
            block = reused
        } else if allocatedBlocks < maxBlocksInFlight {
            allocatedBlocks += 1
            block = DeflateBlock(blockSize: blockSize, outputCapacity: pool.outputCapacity)
        } else {
            let oldest = inFlight[0]
            pool.waitUntilDone(oldest)
            try writeOut(oldest)
            block = spare.removeLast()
        }
        block.reset(sequence: nextSequence)
        nextSequence += 1
        block.dictionaryLength = historyLength
        (block.data - historyLength).update(from: history, count: historyLength)
        return block
    }

    private func submit(_ block: DeflateBlock, isLast: Bool) {
        block.isLast = isLast
        block.injectFailure = injectedFailureBlock == block.sequence
        if !isLast {
            // The new history: the last 32 KiB of (its dictionary + its data). A full block
            // (blockSize >= 32 KiB) alone covers it; a partial one (before a splice, or a
            // segment's last block) may keep part of the old history.
            let total = block.dictionaryLength + block.length
            historyLength = min(Self.dictionarySize, total)
            history.update(from: block.data + block.length - historyLength, count: historyLength)
        }
        inFlight.append(block)
        pool.submit(block)
    }

    /// Submits the block being filled, if it holds any input, sync-flushed (not final).
    private func submitPartial() throws {
        guard let block = current else { return }
        current = nil
        if block.length > 0 {
            submit(block, isLast: false)
        } else {
            spare.append(block)  // primed with a dictionary that may change: reprimed when reused
        }
    }

    /// Waits for every submitted block and writes them all out, in order.
    private func drain() throws {
        while let oldest = inFlight.first {
            pool.waitUntilDone(oldest)
            try writeOut(oldest)
        }
    }

    private func writeHeaderIfNeeded() throws {
        guard !headerWritten, framing == .gzip else { return }
        // ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL OS=3 (Unix), as gzip -n / pigz -n write it.
        try writeDownstream([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, Deflate.extraFlags(level: level), 3])
        headerWritten = true
    }

    /// Writes out the leading blocks that are already compressed, without waiting.
    private func writeCompletedBlocks() throws {
        while let oldest = inFlight.first, pool.isDone(oldest) {
            try writeOut(oldest)
        }
    }

    /// Writes the oldest in-flight block (which must be done) downstream and recycles it.
    private func writeOut(_ block: DeflateBlock) throws {
        precondition(inFlight.first === block)
        if let error = block.error { throw error }
        try writeHeaderIfNeeded()
        try downstream.write(UnsafeRawBufferPointer(start: block.output, count: block.outputLength))
        bytesOut += UInt64(block.outputLength)
        crc = crc32_combine(crc, block.crc, Int(block.length))
        inFlight.removeFirst()
        spare.append(block)
    }

    private func writeDownstream(_ bytes: [UInt8]) throws {
        try downstream.write(bytes)
        bytesOut += UInt64(bytes.count)
    }
}
