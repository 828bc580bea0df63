import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Monotonic milliseconds, for the window's step timings.
public struct Stopwatch: Sendable {
    package let start: UInt64
    public init() { start = Stopwatch.nowNanos() }
    public static func nowNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
    public var elapsedMs: Double { Double(Stopwatch.nowNanos() - start) / 1_000_000 }
}

extension Double {
    /// Rounded to 0.01 ms for the manifest and JSON output.
    public var ms2: Double { (self * 100).rounded() / 100 }
}
