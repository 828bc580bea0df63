import Foundation
@testable import Streams
import Testing

@Suite("GzipWriter")
struct GzipWriterTests {
    static let inputs: [(String, [UInt8])] = [
        ("empty", []),
        ("one byte", [0x41]),
        ("random 300 KiB", TestData.random(300 * 1024)),
        ("compressible 1 MiB", TestData.compressible(1 << 20)),
        ("mixed 3 MiB", TestData.mixed(3 << 20)),
    ]

    @Test("round trip through gzip -t / gzip -dc and zlib", arguments: 0..<inputs.count)
    func roundTrip(index: Int) throws {
        let (name, data) = Self.inputs[index]
        let sink = MemorySink()
        let writer = try GzipWriter(downstream: sink, level: 6)
        try write(data, to: writer, pieces: [1, 7, 4093, 65537, 131_071])
        try writer.finish()
        #expect(sink.isFinished)
        #expect(writer.bytesIn == UInt64(data.count))
        #expect(writer.bytesOut == UInt64(sink.bytes.count))
        #expect(Array(sink.bytes.prefix(3)) == [0x1f, 0x8b, 8], "\(name): not a gzip header")
        #expect(try gunzipWithGzip(sink.bytes) == data, "\(name): gzip -dc output differs")
        #expect(try inflateSingleMember(sink.bytes) == data, "\(name): zlib output differs")
    }

    @Test("levels 0, 1 and 9 round trip and order by size", arguments: [0, 1, 9])
    func levels(level: Int) throws {
        let data = TestData.compressible(512 * 1024)
        let sink = MemorySink()
        let writer = try GzipWriter(downstream: sink, level: level)
        try writer.write(data)
        try writer.finish()
        #expect(try gunzipWithGzip(sink.bytes) == data)
        if level == 0 {
            #expect(sink.bytes.count > data.count, "level 0 stores")
        } else {
            #expect(sink.bytes.count < data.count / 2, "level \(level) compresses text")
        }
    }

    @Test func rejectsBadLevel() {
        #expect(throws: StreamError.invalidArgument("compression level 10 is not in 0...9")) {
            try GzipWriter(downstream: MemorySink(), level: 10)
        }
        #expect(throws: StreamError.self) { try GzipWriter(downstream: MemorySink(), level: -1) }
    }

    @Test func writeAfterFinishThrows() throws {
        let writer = try GzipWriter(downstream: MemorySink())
        try writer.finish()
        #expect(throws: StreamError.alreadyFinished) { try writer.write([1, 2, 3]) }
        #expect(throws: StreamError.alreadyFinished) { try writer.finish() }
    }

    @Test("a downstream error is thrown, sticks, and the downstream is not finished")
    func downstreamErrorPropagates() throws {
        let downstream = FailingSink(limit: 1000)
        let writer = try GzipWriter(downstream: downstream, level: 1, bufferSize: 512)
        let data = TestData.random(1 << 20)
        #expect(throws: FailingSink.Full.self) { try writer.write(data) }
        #expect(throws: FailingSink.Full.self) { try writer.write([1]) }
        #expect(throws: FailingSink.Full.self) { try writer.finish() }
        #expect(downstream.finishCalls == 0)
    }

    @Test("a downstream error at finish is thrown")
    func downstreamFinishErrorPropagates() throws {
        let downstream = FailingSink(limit: .max, failOnFinish: true)
        let writer = try GzipWriter(downstream: downstream)
        try writer.write([1, 2, 3])
        #expect(throws: FailingSink.Full.self) { try writer.finish() }
        #expect(downstream.finishCalls == 1)
    }
}
