import Streams
import Testing

@Suite("TeeSink, ByteCounter, MemorySink")
struct UtilitySinkTests {
    @Test func teeWritesBothAndFinishesBoth() throws {
        let a = MemorySink(), b = MemorySink()
        let tee = TeeSink(a, b)
        try tee.write([1, 2])
        try tee.write("xyz")
        try tee.finish()
        #expect(a.bytes == [1, 2, 0x78, 0x79, 0x7a])
        #expect(b.bytes == a.bytes)
        #expect(a.isFinished && b.isFinished)
    }

    @Test func teeFinishesSecondWhenFirstFails() throws {
        let failing = FailingSink(limit: .max, failOnFinish: true)
        let b = MemorySink()
        let tee = TeeSink(failing, b)
        try tee.write([1])
        #expect(throws: FailingSink.Full.self) { try tee.finish() }
        #expect(b.isFinished)
    }

    @Test func counterCountsForwardsAndReportsProgress() throws {
        let downstream = MemorySink()
        final class Box { var seen: [UInt64] = [] }
        let box = Box()
        let counter = ByteCounter(downstream) { box.seen.append($0) }
        try counter.write([1, 2, 3])
        try counter.write([4])
        try counter.finish()
        #expect(counter.count == 4)
        #expect(box.seen == [3, 4])
        #expect(downstream.bytes == [1, 2, 3, 4])
        #expect(downstream.isFinished)
        #expect(throws: StreamError.alreadyFinished) { try counter.write([5]) }
    }

    @Test("gzip into a tee of a file-like sink and a counter")
    func gzipThroughTee() throws {
        let memory = MemorySink()
        let counter = ByteCounter()
        let gzip = try GzipWriter(downstream: TeeSink(memory, counter))
        let data = TestData.compressible(200_000)
        try gzip.write(data)
        try gzip.finish()
        #expect(counter.count == UInt64(memory.bytes.count))
        #expect(counter.isFinished)
        #expect(try gunzipWithGzip(memory.bytes) == data)
    }
}
