// Compression throughput benchmark: GzipWriter, ParallelGzipWriter, `gzip -6` and `pigz -6` on
// the same half-compressible data. Prints figures; asserts nothing about timing.
//
// Built by run.sh with `swiftc -O` together with Sources/Streams (one module, so no package
// target is needed), or as a package executable target depending on "Streams".
//
// Usage: compress-bench [SIZE_MIB] [SCRATCH_DIR]   (defaults: 256, $TMPDIR or /tmp)
#if canImport(Streams)
import Streams
#endif
import Foundation
#if canImport(Glibc)
import Glibc
#endif

let arguments = CommandLine.arguments
let sizeMiB = arguments.count > 1 ? Int(arguments[1]) ?? 256 : 256
let scratch = arguments.count > 2 ? arguments[2] : (ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp")
let level = 6
let size = sizeMiB << 20

// MARK: Data: alternating 64 KiB runs of random bytes and word salad (SplitMix64 from Tests/Shared, fixed seed).

func makeData(into path: String) throws {
    let words = ["maas", "region", "rack", "controller", "boot", "resource", "postgres", "snapshot",
                 "btrfs", "subvolume", "machine", "interface", "vlan", "subnet", "dhcp", "dns", "1",
                 "42", "2024-06-01", "ubuntu", "jammy", "commissioning", "\n", "\t", "="]
        .map { Array($0.utf8) + [0x20] }
    var rng = SplitMix64(seed: 2024)
    let sink = try FileSink(path: path, exclusive: false)
    var chunk = [UInt8](repeating: 0, count: 64 * 1024)
    var written = 0, index = 0
    while written < size {
        if index % 2 == 0 {
            chunk.withUnsafeMutableBytes { raw in
                for i in stride(from: 0, to: raw.count, by: 8) { raw.storeBytes(of: rng.next(), toByteOffset: i, as: UInt64.self) }
            }
        } else {
            var text: [UInt8] = []
            text.reserveCapacity(chunk.count + 32)
            while text.count < chunk.count { text += words[Int(rng.next() % UInt64(words.count))] }
            chunk = Array(text.prefix(chunk.count))
        }
        let n = min(chunk.count, size - written)
        try chunk.withUnsafeBytes { try sink.write(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        written += n
        index += 1
    }
    try sink.finish()
}

// MARK: Measurement

struct Result {
    var name: String
    var seconds: Double
    var cpuSeconds: Double
    var outputBytes: UInt64
}

/// CPU seconds (user + system) of this process, or of its waited-for children.
func cpuTime(children: Bool) -> Double {
    var usage = rusage()
    _ = getrusage((children ? RUSAGE_CHILDREN : RUSAGE_SELF).rawValue, &usage)
    func s(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    return s(usage.ru_utime) + s(usage.ru_stime)
}

func measure(_ name: String, children: Bool, _ body: () throws -> UInt64) rethrows -> Result {
    let cpu0 = cpuTime(children: children)
    let start = ContinuousClock.now
    let out = try body()
    let elapsed = ContinuousClock.now - start
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    return Result(name: name, seconds: seconds, cpuSeconds: cpuTime(children: children) - cpu0, outputBytes: out)
}

/// Feeds the file to `sink` in 1 MiB reads (the page cache makes this ~free).
func feed(_ path: String, to sink: any ByteSink) throws {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw StreamError.system(operation: "open", errno: errno, path: path) }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 1 << 20)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 { if errno == EINTR { continue }; throw StreamError.system(operation: "read", errno: errno, path: path) }
        if n == 0 { break }
        try buffer.withUnsafeBytes { try sink.write(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
    }
}

/// Runs `tool -6 -c path`, output counted through a pipe-free file in `scratch`.
func runTool(_ tool: String, _ arguments: [String], input path: String, output: String) throws -> UInt64 {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: tool)
    process.arguments = arguments + ["-c", path]
    guard FileManager.default.createFile(atPath: output, contents: nil) else {
        throw StreamError.system(operation: "create", errno: errno, path: output)
    }
    process.standardOutput = FileHandle(forWritingAtPath: output)
    try process.run()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw StreamError.invalidArgument("\(tool) exited \(process.terminationStatus)") }
    let size = (try FileManager.default.attributesOfItem(atPath: output)[.size] as? NSNumber)?.uint64Value ?? 0
    try? FileManager.default.removeItem(atPath: output)
    return size
}

func findTool(_ name: String) -> String? {
    ["/usr/bin/\(name)", "/bin/\(name)", "/usr/local/bin/\(name)"].first { FileManager.default.isExecutableFile(atPath: $0) }
}

let dataPath = "\(scratch)/compress-bench-\(getpid()).dat"
let outPath = "\(scratch)/compress-bench-\(getpid()).out"
defer { try? FileManager.default.removeItem(atPath: dataPath) }

print("generating \(sizeMiB) MiB of half-compressible data in \(dataPath) ...")
try makeData(into: dataPath)
// Warm the page cache so every contender reads from memory.
try feed(dataPath, to: ByteCounter())

let cpus = onlineProcessorCount()
var results: [Result] = []

results.append(try measure("GzipWriter (1 thread)", children: false) {
    let counter = ByteCounter()
    let writer = try GzipWriter(downstream: counter, level: level)
    try feed(dataPath, to: writer)
    try writer.finish()
    return counter.count
})
for threads in Set([1, cpus]).sorted() {
    results.append(try measure("ParallelGzipWriter (\(threads) thread\(threads == 1 ? "" : "s"))", children: false) {
        let counter = ByteCounter()
        let writer = try ParallelGzipWriter(downstream: counter, level: level, threadCount: threads)
        try feed(dataPath, to: writer)
        try writer.finish()
        return counter.count
    })
}
if let gzip = findTool("gzip") {
    results.append(try measure("gzip -\(level)", children: true) {
        try runTool(gzip, ["-\(level)", "-n"], input: dataPath, output: outPath)
    })
} else {
    print("gzip not found: skipped")
}
if let pigz = findTool("pigz") {
    results.append(try measure("pigz -\(level) (\(cpus) threads)", children: true) {
        try runTool(pigz, ["-\(level)", "-n", "-p", "\(cpus)"], input: dataPath, output: outPath)
    })
} else {
    print("pigz not found: skipped")
}

print("\ninput: \(sizeMiB) MiB, level \(level), \(cpus) online CPUs")
print("contender".padding(toLength: 32, withPad: " ", startingAt: 0) + "   MB/s   MiB/s  wall s   CPU s   ratio")
for r in results {
    let mb = Double(size) / 1e6 / r.seconds
    let mib = Double(size) / 1_048_576 / r.seconds
    let ratio = Double(r.outputBytes) / Double(size)
    print(r.name.padding(toLength: 32, withPad: " ", startingAt: 0)
          + String(format: " %6.1f  %6.1f  %6.2f  %6.2f  %6.3f", mb, mib, r.seconds, r.cpuSeconds, ratio))
}
