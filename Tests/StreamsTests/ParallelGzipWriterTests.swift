import Foundation
@testable import Streams
import Testing

@Suite("ParallelGzipWriter")
struct ParallelGzipWriterTests {
    static let block = 64 * 1024

    /// Inputs around the block boundaries (block size 64 KiB in these tests) and bigger ones.
    static let inputs: [(String, [UInt8])] = [
        ("empty", []),
        ("one byte", [0x5a]),
        ("32 KiB - 1", TestData.compressible(32 * 1024 - 1)),
        ("block - 1", TestData.mixed(block - 1)),
        ("exactly one block", TestData.mixed(block)),
        ("block + 1", TestData.mixed(block + 1)),
        ("exactly three blocks", TestData.compressible(3 * block)),
        ("random 1 MiB + 3", TestData.random((1 << 20) + 3)),
        ("mixed 6 MiB", TestData.mixed(6 << 20)),
    ]

    static func compress(_ data: [UInt8], threads: Int, blockSize: Int = block, level: Int = 6,
                         maxBlocksInFlight: Int? = nil, pieces: [Int] = [1, 7, 4093, 65537, 131_071]) throws -> [UInt8] {
        let sink = MemorySink()
        let writer = try ParallelGzipWriter(downstream: sink, level: level, threadCount: threads,
                                            blockSize: blockSize, maxBlocksInFlight: maxBlocksInFlight)
        try write(data, to: writer, pieces: pieces)
        try writer.finish()
        #expect(sink.isFinished)
        #expect(writer.bytesIn == UInt64(data.count))
        #expect(writer.bytesOut == UInt64(sink.bytes.count))
        return sink.bytes
    }

    @Test("round trip through gzip -t / gzip -dc, one member", arguments: 1...4, 0..<inputs.count)
    func roundTrip(threads: Int, index: Int) throws {
        let (name, data) = Self.inputs[index]
        let gz = try Self.compress(data, threads: threads)
        #expect(Array(gz.prefix(10)) == [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3], "\(name): header")
        #expect(try gunzipWithGzip(gz) == data, "\(name), \(threads) threads: gzip -dc output differs")
        #expect(try inflateSingleMember(gz) == data, "\(name), \(threads) threads: zlib output differs")
    }

    @Test("default settings (128 KiB blocks, online CPUs) round trip 5 MiB written in 1 MiB pieces")
    func defaults() throws {
        let data = TestData.mixed(5 << 20)
        let sink = MemorySink()
        let writer = try ParallelGzipWriter(downstream: sink)
        #expect(writer.threadCount == onlineProcessorCount())
        #expect(writer.blockSize == 128 * 1024)
        #expect(writer.maxBlocksInFlight == 2 * writer.threadCount + 2)
        try write(data, to: writer, pieces: [1 << 20])
        try writer.finish()
        #expect(try gunzipWithGzip(sink.bytes) == data)
    }

    @Test("ISIZE and CRC trailer match the input")
    func trailer() throws {
        let data = TestData.mixed(700_001)
        let gz = try Self.compress(data, threads: 3)
        let isize = gz.suffix(4).reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        #expect(isize == UInt32(data.count))
        // The same bytes through GzipWriter (zlib's own gzip wrapper) give the same CRC.
        let single = MemorySink()
        let writer = try GzipWriter(downstream: single)
        try writer.write(data)
        try writer.finish()
        #expect(Array(gz.suffix(8)) == Array(single.bytes.suffix(8)))
    }

    @Test("levels 0, 1 and 9: round trip and XFL byte", arguments: [0, 1, 9])
    func levels(level: Int) throws {
        let data = TestData.compressible(300 * 1024)
        let gz = try Self.compress(data, threads: 2, level: level)
        #expect(gz[8] == (level == 9 ? 2 : level == 1 ? 4 : 0))
        #expect(try gunzipWithGzip(gz) == data)
    }

    @Test("each block is primed with the previous 32 KiB as dictionary")
    func dictionaryPriming() throws {
        // A 16 KiB random chunk repeated, cut into 32 KiB blocks. Primed, every block after the
        // first is all matches; unprimed, each block must store its first 16 KiB literally
        // (>= 256 KiB in all). (A period of exactly 32 KiB would not do: zlib only matches up
        // to 32 KiB - 262 bytes back.)
        let chunk = TestData.random(16 * 1024, seed: 99)
        let data = Array([[UInt8]](repeating: chunk, count: 32).joined())
        let gz = try Self.compress(data, threads: 4, blockSize: 32 * 1024)
        #expect(try gunzipWithGzip(gz) == data)
        #expect(gz.count < 40 * 1024, "compressed to \(gz.count) bytes: blocks were not primed")
    }

    @Test("compression ratio stays within 2% of single-threaded gzip")
    func ratioCloseToGzip() throws {
        let data = TestData.compressible(4 << 20)
        let parallel = try Self.compress(data, threads: 2, blockSize: 128 * 1024)
        let single = MemorySink()
        let writer = try GzipWriter(downstream: single)
        try writer.write(data)
        try writer.finish()
        #expect(Double(parallel.count) < Double(single.bytes.count) * 1.02,
                "parallel \(parallel.count) vs single \(single.bytes.count)")
    }

    @Test("memory bound: at most maxBlocksInFlight blocks; the minimum of 2 still works")
    func tightBackPressure() throws {
        let data = TestData.mixed(2 << 20)
        let gz = try Self.compress(data, threads: 4, blockSize: 32 * 1024, maxBlocksInFlight: 2)
        #expect(try gunzipWithGzip(gz) == data)
    }

    @Test func rejectsBadArguments() {
        #expect(throws: StreamError.self) { try ParallelGzipWriter(downstream: MemorySink(), level: 11) }
        #expect(throws: StreamError.self) { try ParallelGzipWriter(downstream: MemorySink(), threadCount: 0) }
        #expect(throws: StreamError.self) { try ParallelGzipWriter(downstream: MemorySink(), blockSize: 32 * 1024 - 1) }
        #expect(throws: StreamError.self) { try ParallelGzipWriter(downstream: MemorySink(), maxBlocksInFlight: 1) }
    }

    @Test func writeAfterFinishThrows() throws {
        let writer = try ParallelGzipWriter(downstream: MemorySink(), threadCount: 2)
        try writer.write([1, 2, 3])
        try writer.finish()
        #expect(throws: StreamError.alreadyFinished) { try writer.write([1]) }
        #expect(throws: StreamError.alreadyFinished) { try writer.finish() }
    }

    @Test("a writer dropped unfinished stops its threads")
    func dropUnfinished() throws {
        for _ in 0..<20 {
            let writer = try ParallelGzipWriter(downstream: MemorySink(), threadCount: 4, blockSize: 32 * 1024)
            try writer.write(TestData.random(300 * 1024))
        }
    }

    @Test("a downstream write error is thrown, sticks, and the downstream is not finished",
          arguments: 1...4)
    func downstreamErrorPropagates(threads: Int) throws {
        let downstream = FailingSink(limit: 200 * 1024)
        let writer = try ParallelGzipWriter(downstream: downstream, threadCount: threads, blockSize: 32 * 1024)
        let data = TestData.random(4 << 20)
        var thrown: (any Error)?
        do {
            try write(data, to: writer, pieces: [10_000])
            try writer.finish()
        } catch {
            thrown = error
        }
        #expect(thrown is FailingSink.Full)
        #expect(throws: FailingSink.Full.self) { try writer.write([1]) }
        #expect(throws: FailingSink.Full.self) { try writer.finish() }
        #expect(downstream.finishCalls == 0)
    }

    @Test("a downstream error at finish is thrown")
    func downstreamFinishError() throws {
        let downstream = FailingSink(limit: .max, failOnFinish: true)
        let writer = try ParallelGzipWriter(downstream: downstream, threadCount: 2)
        try writer.write(TestData.random(100))
        #expect(throws: FailingSink.Full.self) { try writer.finish() }
        #expect(downstream.finishCalls == 1)
    }

    @Test("a worker's zlib error reaches the next write or finish", arguments: [0, 3, 7])
    func workerErrorPropagates(failingBlock: Int) throws {
        let downstream = MemorySink()
        let writer = try ParallelGzipWriter(downstream: downstream, threadCount: 2, blockSize: 32 * 1024)
        writer.injectedFailureBlock = failingBlock
        let data = TestData.mixed(32 * 1024 * 8) // blocks 0...7
        var thrown: (any Error)?
        do {
            try write(data, to: writer, pieces: [32 * 1024])
            try writer.finish()
        } catch {
            thrown = error
        }
        let error = try #require(thrown as? StreamError)
        guard case .zlib(_, let code, let message) = error else {
            Issue.record("unexpected error \(error)")
            return
        }
        #expect(code == -2)
        #expect(message?.contains("injected") == true)
        #expect(throws: StreamError.self) { try writer.write([1]) }
        #expect(throws: error) { try writer.finish() }
        #expect(!downstream.isFinished)
    }

    /// A raw segment compressed on its own, as the dump is while the files are archived.
    static func segment(_ data: [UInt8], threads: Int) throws -> (bytes: [UInt8], crc: UInt, tail: [UInt8]) {
        let sink = MemorySink()
        let w = try ParallelGzipWriter(downstream: sink, threadCount: threads, blockSize: block, framing: .rawSegment)
        try StreamsTests.write(data, to: w, pieces: [4093, 65537])
        try w.finish()
        #expect(sink.isFinished)
        #expect(w.bytesIn == UInt64(data.count))
        #expect(Array(w.tail) == Array(data.suffix(32 * 1024)), "the tail is the last 32 KiB of the input")
        return (sink.bytes, w.crc, w.tail)
    }

    @Test("a raw segment spliced between writes gives one gzip member that gzip and zlib read back",
          arguments: [(0, 0, 0), (1, 0, 5), (block - 1, 3, block + 1), (3 * block, 200_001, 17), (0, 1 << 20, 0), (40_000, 0, 0)])
    func splice(before: Int, middle: Int, after: Int) throws {
        let a = TestData.mixed(before), m = TestData.compressible(middle, seed: 5)
        // z repeats the end of a and of m, so its first block refers back across the splice:
        // that only decodes right when its dictionary is the tail of a + m.
        let z = Array(a.suffix(20_000)) + Array(m.suffix(1000)) + TestData.compressible(after)
        for threads in [1, 3] {
            let seg = try Self.segment(m, threads: threads)
            let sink = MemorySink()
            let w = try ParallelGzipWriter(downstream: sink, threadCount: threads, blockSize: Self.block)
            try StreamsTests.write(a, to: w, pieces: [7, 65537])
            var offset = 0
            let copied = try w.appendRawDeflate(length: UInt64(m.count), crc: seg.crc, tail: seg.tail) { buf in
                let n = min(buf.count, seg.bytes.count - offset, 5000)
                buf.copyBytes(from: seg.bytes[offset..<offset + n])
                offset += n
                return n
            }
            #expect(copied == UInt64(seg.bytes.count))
            try StreamsTests.write(z, to: w, pieces: [4093])
            try w.finish()
            #expect(w.bytesIn == UInt64(a.count + m.count + z.count))
            let whole = a + m + z
            #expect(try gunzipWithGzip(sink.bytes) == whole, "\(before)/\(middle)/\(after), \(threads) threads: gzip -dc differs")
            #expect(try inflateSingleMember(sink.bytes) == whole, "\(before)/\(middle)/\(after): not one member, or zlib differs")
        }
    }

    @Test("splicing into a raw segment writer, or a tail over 32 KiB, is refused")
    func spliceRefused() throws {
        let raw = try ParallelGzipWriter(downstream: MemorySink(), threadCount: 1, framing: .rawSegment)
        #expect(throws: StreamError.self) { try raw.appendRawDeflate(length: 0, crc: 0, tail: []) { _ in 0 } }
        let gz = try ParallelGzipWriter(downstream: MemorySink(), threadCount: 1)
        #expect(throws: StreamError.self) {
            try gz.appendRawDeflate(length: 1, crc: 0, tail: [UInt8](repeating: 0, count: 32 * 1024 + 1)) { _ in 0 }
        }
    }

    @Test("tar reads a tar stream compressed by ParallelGzipWriter")
    func tarAcceptsOutput() throws {
        let tar = try #require(Tool.tar, "tar binary not found")
        let dir = try TemporaryDirectory()
        let source = dir.path("src")
        try FileManager.default.createDirectory(atPath: source + "/etc/maas", withIntermediateDirectories: true)
        let files: [String: [UInt8]] = [
            "etc/maas/regiond.conf": Array("maas_url: http://10.0.0.2:5240/MAAS\n".utf8),
            "etc/maas/big.bin": TestData.mixed(3 << 20),
            "etc/maas/empty": [],
        ]
        for (name, bytes) in files {
            try Data(bytes).write(to: URL(fileURLWithPath: source + "/" + name))
        }
        let created = try Tool.run(tar, ["--format=pax", "-C", source, "-cf", "-", "etc"])
        #expect(created.status == 0, "tar -c: \(created.stderr)")

        let archive = dir.path("backup.tar.gz")
        let file = try FileSink(path: archive, syncOnFinish: true)
        let writer = try ParallelGzipWriter(downstream: file, threadCount: 3, blockSize: 32 * 1024)
        try write(created.stdout, to: writer, pieces: [10_240])
        try writer.finish()
        #expect(file.bytesWritten == writer.bytesOut)

        let listed = try Tool.run(tar, ["-tzf", archive])
        #expect(listed.status == 0, "tar -tz: \(listed.stderr)")
        let names = Set(String(decoding: listed.stdout, as: UTF8.self).split(separator: "\n").map(String.init))
        for name in files.keys { #expect(names.contains(name), "\(name) missing from tar -t") }

        let out = dir.path("out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let extracted = try Tool.run(tar, ["-xzf", archive, "-C", out])
        #expect(extracted.status == 0, "tar -xz: \(extracted.stderr)")
        for (name, bytes) in files {
            let back = try [UInt8](Data(contentsOf: URL(fileURLWithPath: out + "/" + name)))
            #expect(back == bytes, "\(name) differs after tar -xz")
        }
    }
}

/// Incompressible blocks (uploaded boot images) go out as stored blocks, not deflated (issue 24).
@Suite("ParallelGzipWriter stored blocks")
struct StoredBlockTests {
    @Test("random data is stored: it decompresses right, barely grows, and no block is deflated")
    func randomIsStored() throws {
        let data = TestData.random(4 << 20)
        let sink = MemorySink()
        let writer = try ParallelGzipWriter(downstream: sink, level: 6, threadCount: 3, blockSize: 128 * 1024)
        try write(data, to: writer, pieces: [1, 4093, 65537, 131_071])
        try writer.finish()
        #expect(try gunzipWithGzip(sink.bytes) == data)
        #expect(writer.storedBlocks == 32)
        // 5 bytes per 64 KiB stored block, the gzip header and trailer.
        #expect(sink.bytes.count <= data.count + data.count / 65535 * 5 + 5 * 32 + 18 + 16, "\(sink.bytes.count) for \(data.count)")
    }

    @Test("compressible data is deflated, and mixed data (stored and deflated blocks interleaved) round-trips", arguments: [1, 4])
    func mixedRoundTrip(threads: Int) throws {
        let text = TestData.compressible(1 << 20)
        let sink = MemorySink()
        let w = try ParallelGzipWriter(downstream: sink, level: 6, threadCount: threads, blockSize: 64 * 1024)
        try write(text, to: w, pieces: [65537])
        try w.finish()
        #expect(w.storedBlocks == 0)
        #expect(sink.bytes.count < text.count / 2)

        var mixed: [UInt8] = []
        for i in 0..<12 { mixed += i % 3 == 0 ? TestData.compressible(100_000 + i) : TestData.random(70_000 + i * 7) }
        mixed += TestData.random(24 * 1024 + 5)  // the last block, small: deflated, final
        let out = try ParallelGzipWriterTests.compress(mixed, threads: threads, blockSize: 64 * 1024)
        #expect(try gunzipWithGzip(out) == mixed)
        let last = try ParallelGzipWriterTests.compress(TestData.random(5 * 64 * 1024), threads: threads, blockSize: 64 * 1024)
        #expect(try gunzipWithGzip(last) == TestData.random(5 * 64 * 1024), "a stored final block")
    }
}
