import Foundation
import MSBKit
import MSBSnapshot
import MSBDatabase
import MSBServices
import MSBArchive
import MSBPackages
import MSBRegion
import MSBPrune
#if canImport(Glibc)
import Glibc
#endif

/// `--after-boot SECONDS`: a run started soon after boot (the timer's catch-up of a missed day)
/// first waits until the system has been up that long, so that MAAS is not stopped while it starts.
public enum BootSettle {
    /// Seconds since boot (/proc/uptime), or nil when unknown.
    public static func uptime() -> Double? {
        guard let s = try? String(contentsOfFile: "/proc/uptime", encoding: .utf8),
              let first = s.split(separator: " ").first else { return nil }
        return Double(first)
    }

    /// Waits until the uptime reaches `seconds`; returns the seconds waited. SIGINT/SIGTERM end the wait
    /// (the run then stops before changing anything).
    @discardableResult
    public static func wait(seconds: Int, log: LogSink?) async throws -> Double {
        guard seconds > 0, let up = uptime(), up < Double(seconds) else { return 0 }
        let wait = Double(seconds) - up
        log?(.info, String(format: "the system booted %.0f s ago: waiting %.0f s for MAAS to settle before the backup (--after-boot %d)", up, wait, seconds))
        let clock = Stopwatch()
        while clock.elapsedMs < wait * 1000 {
            try Interruption.check()
            try await Task.sleep(nanoseconds: UInt64(min(1.0, wait - clock.elapsedMs / 1000) * 1e9))
        }
        return wait
    }
}
