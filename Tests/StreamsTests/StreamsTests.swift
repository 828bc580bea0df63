// Shared helpers for the Streams tests: deterministic test data, the real gzip/tar binaries run
// through Foundation.Process, and an in-process single-member gzip check with zlib.
import CZlib
import Foundation
import TestSupport
import Streams
import Testing

enum TestData {
    /// Incompressible bytes.
    static func random(_ count: Int, seed: UInt64 = 1) -> [UInt8] {
        var rng = SplitMix64(seed: seed)
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { raw in
            var i = 0
            while i + 8 <= count {
                raw.storeBytes(of: rng.next(), toByteOffset: i, as: UInt64.self)
                i += 8
            }
            while i < count {
                raw[i] = UInt8(truncatingIfNeeded: rng.next())
                i += 1
            }
        }
        return out
    }

    /// Text-like bytes (words from a small vocabulary, random order): compresses ~3-4x.
    static func compressible(_ count: Int, seed: UInt64 = 2) -> [UInt8] {
        let words = ["maas", "region", "rack", "controller", "boot", "resource", "postgres", "snapshot",
                     "btrfs", "subvolume", "machine", "interface", "vlan", "subnet", "dhcp", "dns",
                     "1", "42", "2024-06-01", "ubuntu", "jammy", "commissioning", "\n", "\t", "="]
            .map { Array($0.utf8) + [0x20] }
        var rng = SplitMix64(seed: seed)
        var out: [UInt8] = []
        out.reserveCapacity(count + 32)
        while out.count < count {
            out.append(contentsOf: words[Int(rng.next() % UInt64(words.count))])
        }
        return Array(out.prefix(count))
    }

    /// Alternating 64 KiB runs of random and text-like bytes: roughly half-compressible.
    static func mixed(_ count: Int, seed: UInt64 = 3) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count)
        var chunk = 0
        while out.count < count {
            let n = min(64 * 1024, count - out.count)
            out += chunk % 2 == 0 ? random(n, seed: seed &+ UInt64(chunk)) : compressible(n, seed: seed &+ UInt64(chunk))
            chunk += 1
        }
        return out
    }
}

/// A scratch directory removed at deinit.
final class TemporaryDirectory {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("streams-tests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(at: url) }
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
}

struct ProcessResult {
    var status: Int32
    var stdout: [UInt8]
    var stderr: String
}

enum Tool {
    /// Runs `executable` with `arguments`, stdin from `stdinPath` (or /dev/null); stdout and
    /// stderr go to files, so big outputs cannot deadlock a pipe.
    static func run(_ executable: String, _ arguments: [String], stdinPath: String? = nil) throws -> ProcessResult {
        let dir = try TemporaryDirectory()
        let outPath = dir.path("stdout"), errPath = dir.path("stderr")
        #expect(FileManager.default.createFile(atPath: outPath, contents: nil))
        #expect(FileManager.default.createFile(atPath: errPath, contents: nil))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = FileHandle(forReadingAtPath: stdinPath ?? "/dev/null")
        process.standardOutput = FileHandle(forWritingAtPath: outPath)
        process.standardError = FileHandle(forWritingAtPath: errPath)
        try process.run()
        process.waitUntilExit()
        let out = try [UInt8](Data(contentsOf: URL(fileURLWithPath: outPath)))
        let err = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        return ProcessResult(status: process.terminationStatus, stdout: out, stderr: err)
    }

    static func find(_ name: String) -> String? {
        for dir in ["/usr/bin", "/bin", "/usr/local/bin"] {
            let path = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    static let gzip = find("gzip")
    static let tar = find("tar")
}

/// Writes `gz` to a file, then checks it with `gzip -t` and returns `gzip -dc`'s output.
func gunzipWithGzip(_ gz: [UInt8]) throws -> [UInt8] {
    let gzip = try #require(Tool.gzip, "gzip binary not found")
    let dir = try TemporaryDirectory()
    let path = dir.path("data.gz")
    try Data(gz).write(to: URL(fileURLWithPath: path))
    let test = try Tool.run(gzip, ["-t", path])
    #expect(test.status == 0, "gzip -t: \(test.stderr)")
    let result = try Tool.run(gzip, ["-dc"], stdinPath: path)
    #expect(result.status == 0, "gzip -dc: \(result.stderr)")
    #expect(result.stderr.isEmpty, "gzip -dc warned: \(result.stderr)")
    return result.stdout
}

/// Inflates `gz` with zlib and checks it is exactly ONE gzip member with nothing after it.
func inflateSingleMember(_ gz: [UInt8]) throws -> [UInt8] {
    var stream = z_stream()
    #expect(inflateInit2_(&stream, 15 + 16, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK)
    defer { inflateEnd(&stream) }
    var out: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 256 * 1024)
    var input = gz
    var rc: Int32 = Z_OK
    input.withUnsafeMutableBufferPointer { inPtr in
        stream.next_in = inPtr.baseAddress
        stream.avail_in = uInt(inPtr.count)
        repeat {
            buffer.withUnsafeMutableBufferPointer { outPtr in
                stream.next_out = outPtr.baseAddress
                stream.avail_out = uInt(outPtr.count)
                rc = inflate(&stream, Z_NO_FLUSH)
                out.append(contentsOf: outPtr.prefix(outPtr.count - Int(stream.avail_out)))
            }
        } while rc == Z_OK
    }
    #expect(rc == Z_STREAM_END, "inflate ended with \(rc)")
    #expect(stream.avail_in == 0, "\(stream.avail_in) bytes after the first gzip member")
    return out
}

/// Writes `data` into `sink` in pieces whose sizes cycle through `pieces`.
func write(_ data: [UInt8], to sink: any ByteSink, pieces: [Int]) throws {
    try data.withUnsafeBytes { raw in
        var offset = 0, i = 0
        while offset < raw.count {
            let n = min(pieces[i % pieces.count], raw.count - offset)
            try sink.write(UnsafeRawBufferPointer(rebasing: raw[offset..<offset + n]))
            offset += n
            i += 1
        }
    }
}

/// A downstream that throws once more than `limit` bytes have been written to it.
final class FailingSink: ByteSink {
    struct Full: Error, Equatable {}
    let limit: Int
    private(set) var received = 0
    private(set) var finishCalls = 0
    let failOnFinish: Bool
    init(limit: Int, failOnFinish: Bool = false) {
        self.limit = limit
        self.failOnFinish = failOnFinish
    }
    func write(_ bytes: UnsafeRawBufferPointer) throws {
        if received + bytes.count > limit { throw Full() }
        received += bytes.count
    }
    func finish() throws {
        finishCalls += 1
        if failOnFinish { throw Full() }
    }
}
