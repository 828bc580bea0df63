import Foundation
import Streams
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("FileSink")
struct FileSinkTests {
    private func isOpen(_ fd: Int32) -> Bool { fcntl(fd, F_GETFD) != -1 }

    @Test("creates a 0600 file, writes everything, counts bytes, fsyncs and closes")
    func writesFile() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path("out.partial")
        let oldMask = umask(0o022)
        defer { umask(oldMask) }
        let sink = try FileSink(path: path)
        let data = TestData.mixed(3 << 20)
        try write(data, to: sink, pieces: [1, 100_000, 1 << 20])
        #expect(sink.bytesWritten == UInt64(data.count))
        try sink.fsync()
        let fd = sink.fileDescriptor
        try sink.finish()
        #expect(!isOpen(fd), "an owned descriptor is closed by finish")
        #expect(sink.fileDescriptor == -1)
        #expect(try [UInt8](Data(contentsOf: URL(fileURLWithPath: path))) == data)
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
    }

    @Test("exclusive create fails with EEXIST; non-exclusive truncates")
    func exclusive() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path("f")
        try Data([1, 2, 3, 4]).write(to: URL(fileURLWithPath: path))
        #expect(throws: StreamError.system(operation: "open", errno: EEXIST, path: path)) {
            try FileSink(path: path)
        }
        let sink = try FileSink(path: path, exclusive: false)
        try sink.write([9])
        try sink.finish()
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data([9]))
    }

    @Test("open errors carry errno and path")
    func openError() throws {
        do {
            _ = try FileSink(path: "/nonexistent-dir-\(UUID())/x")
            Issue.record("open did not fail")
        } catch let error as StreamError {
            #expect(error.errno == ENOENT)
            #expect(error.description.contains("nonexistent-dir"))
        }
    }

    @Test("a descriptor it did not open stays open unless closeOnFinish")
    func borrowedDescriptor() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path("borrowed")
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        try #require(fd >= 0)
        defer { close(fd) }
        do {
            let sink = FileSink(fileDescriptor: fd, syncOnFinish: true)
            try sink.write(Array("hello ".utf8))
            try sink.finish()
        }
        #expect(isOpen(fd), "finish and deinit must not close a borrowed descriptor")
        let fd2 = dup(fd)
        let sink2 = FileSink(fileDescriptor: fd2, closeOnFinish: true)
        try sink2.write(Array("world".utf8))
        try sink2.finish()
        #expect(!isOpen(fd2))
        #expect(String(decoding: try Data(contentsOf: URL(fileURLWithPath: path)), as: UTF8.self) == "hello world")
    }

    @Test("deinit closes an owned descriptor that was never finished")
    func deinitCloses() throws {
        let dir = try TemporaryDirectory()
        var fd: Int32 = -1
        do {
            let sink = try FileSink(path: dir.path("x"))
            fd = sink.fileDescriptor
            try sink.write([1])
            #expect(isOpen(fd))
        }
        #expect(!isOpen(fd))
    }

    @Test("write errors carry errno: ENOSPC on /dev/full, EBADF on a read-only descriptor")
    func writeErrors() throws {
        let full = try FileSink(path: "/dev/full", exclusive: false)
        #expect(throws: StreamError.system(operation: "write", errno: ENOSPC, path: "/dev/full")) {
            try full.write([1, 2, 3])
        }
        let fd = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { close(fd) }
        let readOnly = FileSink(fileDescriptor: fd)
        #expect(throws: StreamError.system(operation: "write", errno: EBADF, path: nil)) {
            try readOnly.write([1])
        }
    }

    @Test("big writes to a pipe are written in full (short writes continued)")
    func pipeFullWrites() throws {
        var fds: [Int32] = [0, 0]
        try #require(pipe(&fds) == 0)
        let data = TestData.random(4 << 20)
        let readFD = fds[0]
        // The reader drains slowly in small reads, so the writer sees a full pipe many times.
        let reader = Thread {
            var buffer = [UInt8](repeating: 0, count: 4096)
            var total = [UInt8]()
            while true {
                let n = buffer.withUnsafeMutableBytes { read(readFD, $0.baseAddress, 4096) }
                if n <= 0 { break }
                total += buffer.prefix(n)
            }
            close(readFD)
            ReaderResult.shared.set(total)
        }
        reader.start()
        let sink = FileSink(fileDescriptor: fds[1], closeOnFinish: true)
        try sink.write(data)
        try sink.finish()
        let received = ReaderResult.shared.wait()
        #expect(received == data)
        #expect(sink.bytesWritten == UInt64(data.count))
    }

    @Test func finishTwiceThrows() throws {
        let dir = try TemporaryDirectory()
        let sink = try FileSink(path: dir.path("x"))
        try sink.finish()
        #expect(throws: StreamError.alreadyFinished) { try sink.finish() }
        #expect(throws: StreamError.alreadyFinished) { try sink.write([1]) }
    }
}

/// Hands the pipe reader's bytes back to the test.
final class ReaderResult: @unchecked Sendable {
    static let shared = ReaderResult()
    private let condition = NSCondition()
    private var value: [UInt8]?
    func set(_ bytes: [UInt8]) {
        condition.lock()
        value = bytes
        condition.broadcast()
        condition.unlock()
    }
    func wait() -> [UInt8] {
        condition.lock()
        defer { value = nil; condition.unlock() }
        while value == nil { condition.wait() }
        return value!
    }
}
