import CZlib

// The worker side of ParallelGzipWriter: the blocks and the threads that compress them.

/// One block of input and its compressed form.
///
/// `@unchecked Sendable`: a block is handed between the producer thread and one worker, never
/// used by both at once. The producer fills it, then `DeflatePool.submit` queues it under the
/// pool's lock; a worker dequeues it under that lock, compresses it without the lock, and sets
/// `isDone` under the lock; the producer reads the results only after seeing `isDone` under the
/// lock. Each hand-over goes through the mutex, which orders the memory accesses.
final class DeflateBlock: @unchecked Sendable {
    /// Dictionary area (32 KiB) followed by the data area (blockSize).
    private let storage: UnsafeMutablePointer<UInt8>
    let capacity: Int
    var data: UnsafeMutablePointer<UInt8> { storage + ParallelGzipWriter.dictionarySize }
    /// The dictionary is the `dictionaryLength` bytes just before `data`.
    var dictionaryLength = 0
    var length = 0
    var isLast = false
    var sequence = 0
    var injectFailure = false

    // Set by the worker.
    var output: UnsafeMutablePointer<UInt8>
    var outputCapacity: Int
    var outputLength = 0
    var crc: UInt = 0
    var error: StreamError?
    /// Guarded by the pool's lock.
    var isDone = false

    init(blockSize: Int, outputCapacity: Int) {
        capacity = blockSize
        storage = .allocate(capacity: ParallelGzipWriter.dictionarySize + blockSize)
        output = .allocate(capacity: outputCapacity)
        self.outputCapacity = outputCapacity
    }

    deinit {
        storage.deallocate()
        output.deallocate()
    }

    func reset(sequence: Int) {
        self.sequence = sequence
        dictionaryLength = 0
        length = 0
        isLast = false
        injectFailure = false
        outputLength = 0
        crc = 0
        error = nil
        isDone = false
    }

    /// Makes room for at least `extra` more output bytes.
    func growOutput(atLeast extra: Int) {
        let newCapacity = max(outputCapacity * 2, outputLength + extra)
        let bigger = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        bigger.update(from: output, count: outputLength)
        output.deallocate()
        output = bigger
        outputCapacity = newCapacity
    }
}

/// The worker threads, their zlib streams and the queue of blocks to compress.
///
/// `@unchecked Sendable`: shared by the producer and the workers. `pending`, `stopping`,
/// `failure` and every block's `isDone` are only touched with `monitor` locked. `streams[i]` is
/// only used by worker `i` while it runs, and freed by `stop()` after the workers are joined.
/// `threads` is only touched by the producer (in `start` and `stop`).
final class DeflatePool: @unchecked Sendable {
    let outputCapacity: Int
    private let monitor = Monitor()
    private var pending: [DeflateBlock] = []
    private var stopping = false
    private var firstFailure: StreamError?
    private var streams: [UnsafeMutablePointer<z_stream>] = []
    /// One level-1 stream per worker that tries a sample of each block (`IncompressibleProbe`).
    private var probes: [IncompressibleProbe] = []
    private var threads: [JoinableThread] = []
    private var stopped = false
    /// Blocks written as stored blocks (incompressible), for the tests and the benchmark.
    private(set) var storedBlockCount = 0
    private let level: Int

    init(threadCount: Int, level: Int, blockSize: Int) throws {
        self.level = level
        do {
            for _ in 0..<threadCount {
                streams.append(try Deflate.makeStream(level: level, windowBits: -15))
                if level > 0 { probes.append(try IncompressibleProbe()) }
            }
        } catch {
            streams.forEach(Deflate.end)
            probes.forEach { $0.end() }
            throw error
        }
        // deflateBound covers Z_FINISH; a sync flush adds at most a few bytes (an empty stored
        // block), and growOutput covers anything beyond.
        outputCapacity = Int(deflateBound(streams[0], uLong(blockSize))) + 64
    }

    deinit {
        stop()
    }

    /// Starts one thread per stream.
    func start() throws {
        for index in streams.indices {
            // The worker reads `streams[index]` itself: `streams` is complete before any thread
            // starts (pthread_create orders it) and only changes in `stop()` after the joins.
            threads.append(try JoinableThread { [self] in
                self.work(stream: self.streams[index], probe: self.probes.isEmpty ? nil : self.probes[index])
            })
        }
    }

    /// The first error a worker hit, if any.
    var failure: StreamError? {
        monitor.withLock { firstFailure }
    }

    func submit(_ block: DeflateBlock) {
        monitor.withLock {
            pending.append(block)
            monitor.signal(Monitor.work)
        }
    }

    func isDone(_ block: DeflateBlock) -> Bool {
        monitor.withLock { block.isDone }
    }

    /// Blocks until a worker has finished `block` (which must have been submitted).
    func waitUntilDone(_ block: DeflateBlock) {
        monitor.withLock {
            while !block.isDone { monitor.wait(Monitor.done) }
        }
    }

    /// Stops the workers (abandoning queued blocks), joins them and frees the zlib streams.
    /// Idempotent; producer thread only.
    func stop() {
        guard !stopped else { return }
        stopped = true
        monitor.withLock {
            stopping = true
            monitor.broadcast(Monitor.work)
        }
        threads.forEach { $0.join() }
        threads.removeAll()
        streams.forEach(Deflate.end)
        streams.removeAll()
        probes.forEach { $0.end() }
        probes.removeAll()
    }

    /// Blocks stored so far (read under the lock).
    var storedBlocks: Int { monitor.withLock { storedBlockCount } }

    private func work(stream: UnsafeMutablePointer<z_stream>, probe: IncompressibleProbe?) {
        while true {
            let next: DeflateBlock? = monitor.withLock {
                while pending.isEmpty && !stopping { monitor.wait(Monitor.work) }
                return stopping ? nil : pending.removeFirst()
            }
            guard let block = next else { return }
            let stored = probe?.isIncompressible(block) == true
            if stored { Self.store(block) } else { compress(block, with: stream) }
            monitor.withLock {
                if stored { storedBlockCount += 1 }
                block.isDone = true
                if firstFailure == nil, let error = block.error { firstFailure = error }
                // Only the producer waits on `done`.
                monitor.signal(Monitor.done)
            }
        }
    }

    private func compress(_ block: DeflateBlock, with stream: UnsafeMutablePointer<z_stream>) {
        do {
            if block.injectFailure {
                throw StreamError.zlib(operation: "deflate", code: Z_STREAM_ERROR, message: "injected failure (test)")
            }
            var rc = deflateReset(stream)
            guard rc == Z_OK else { throw Deflate.error("deflateReset", rc, stream) }
            if block.dictionaryLength > 0 {
                rc = deflateSetDictionary(stream, block.data - block.dictionaryLength, uInt(block.dictionaryLength))
                guard rc == Z_OK else { throw Deflate.error("deflateSetDictionary", rc, stream) }
            }
            block.crc = crc32_z(0, block.data, z_size_t(block.length))
            stream.pointee.next_in = block.data
            stream.pointee.avail_in = uInt(block.length)
            let flush = block.isLast ? Z_FINISH : Z_SYNC_FLUSH
            block.outputLength = 0
            while true {
                if block.outputCapacity - block.outputLength < 64 {
                    block.growOutput(atLeast: 64 * 1024)
                }
                stream.pointee.next_out = block.output + block.outputLength
                stream.pointee.avail_out = uInt(block.outputCapacity - block.outputLength)
                rc = CZlib.deflate(stream, flush)
                guard rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR else {
                    throw Deflate.error("deflate", rc, stream)
                }
                block.outputLength = block.outputCapacity - Int(stream.pointee.avail_out)
                if block.isLast {
                    if rc == Z_STREAM_END { break }
                } else if stream.pointee.avail_in == 0 && stream.pointee.avail_out != 0 {
                    break
                }
            }
        } catch let error as StreamError {
            block.error = error
        } catch {
            block.error = .zlib(operation: "deflate", code: Z_STREAM_ERROR, message: "\(error)")
        }
        stream.pointee.next_in = nil
        stream.pointee.avail_in = 0
        stream.pointee.next_out = nil
        stream.pointee.avail_out = 0
    }
}
