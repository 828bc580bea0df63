import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// SIGINT, SIGTERM and SIGHUP set a flag that the pipelines check between steps; the window
/// finishes (services started again) before the run stops.
public enum Interruption {
    nonisolated(unsafe) static package var signalNumber: sig_atomic_t = 0

    public static func install() {
        for s in [SIGINT, SIGTERM, SIGHUP] {
            var sa = sigaction()
            sa.__sigaction_handler.sa_handler = { sig in Interruption.signalNumber = sig }
            sigemptyset(&sa.sa_mask)
            sa.sa_flags = 0
            sigaction(s, &sa, nil)
        }
    }

    public static var requested: Int32? { signalNumber == 0 ? nil : signalNumber }

    public static func check() throws {
        if let s = requested {
            throw BackupError.failed("interrupted by signal \(s); everything this run made was removed")
        }
    }
}
