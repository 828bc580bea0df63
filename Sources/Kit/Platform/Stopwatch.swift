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

/// Records how long each named step took, one call per step (a failed step is not recorded).
package final class StepTimer: @unchecked Sendable {
    package private(set) var steps: [Manifest.WindowStep] = []
    /// Told of each step as it ends (`-v` prints them).
    package let onStep: (@Sendable (Manifest.WindowStep) -> Void)?
    package init(onStep: (@Sendable (Manifest.WindowStep) -> Void)? = nil) { self.onStep = onStep }

    package func time<T>(_ name: String, _ body: () async throws -> T) async rethrows -> T {
        let t = Stopwatch()
        let r = try await body()
        steps.append(.init(step: name, ms: t.elapsedMs.ms2))
        onStep?(steps[steps.count - 1])
        return r
    }
}
