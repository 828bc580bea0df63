import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Fault points between the steps of a run, for the tests that prove the cleanup on every path.
package enum FaultPoint {
    /// Test hook (documented in the README's developer notes): MSB_TEST_FAIL_AFTER=<step> fails the
    /// run right after that step, to prove the cleanup on every path.
    /// The environment, read once: a fault point runs between the window's steps, where a fresh
    /// dictionary of the whole environment per call would be downtime for nothing.
    package static let environment = ProcessInfo.processInfo.environment

    package static func hit(_ step: String) throws {
        let env = environment
        if let s = env["MSB_TEST_FAIL_AFTER"], s == step {
            throw BackupError.failed("injected failure after step '\(step)' (MSB_TEST_FAIL_AFTER)")
        }
        if let s = env["MSB_TEST_PAUSE_AFTER"], s == step {
            // MSB_TEST_PAUSE_MARKER: a file written when the pause begins, so a test knows when to act.
            if let marker = env["MSB_TEST_PAUSE_MARKER"] { _ = FileManager.default.createFile(atPath: marker, contents: Data(step.utf8)) }
            // A signal cuts the pause short; the next check then stops the run. (Polled: the signal
            // may land on another thread than this one, whose sleep it would not interrupt.)
            let end = Date().addingTimeInterval(Double(env["MSB_TEST_PAUSE_SECONDS"].flatMap(UInt32.init) ?? 30))
            while Date() < end && Interruption.requested == nil { usleep(20_000) }
        }
    }
}
