import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The checks every command that changes the system makes first.
package enum Privilege {
    /// Throws "<what> must run as root" (exit 77) unless this process is root.
    package static func requireRoot(_ what: String, why: String? = nil) throws {
        guard geteuid() == 0 else {
            throw BackupError(.noPermission, "\(what) must run as root" + (why.map { " (\($0))" } ?? ""), hint: "run it with sudo")
        }
    }

    /// Why `path` (or the nearest existing folder above it, where it would be made) is not
    /// writable, or nil.
    package static func notWritable(_ path: String) -> String? {
        access(FileSystem.nearestExisting(path), W_OK) == 0 ? nil : "\(path) is not writable"
    }
}
