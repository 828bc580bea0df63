import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A private 0700 folder for one run (staging copies, the passfile, the dump's spool).
public struct PrivateDir: Sendable {
    public let path: String
    package init(path: String) { self.path = path }

    public static func make(in parent: String, name: String) throws -> PrivateDir {
        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let p = parent + "/" + name
        guard mkdir(p, 0o700) == 0 else {
            throw BackupError(.cantCreate, "cannot create \(p): \(Errno.last.description)")
        }
        return PrivateDir(path: p)
    }

    /// A new 0700 folder `msb-XXXXXX` in `parent` (default: $TMPDIR).
    public static func makeTemporary(in parent: String? = nil) throws -> PrivateDir {
        var template = Array(((parent ?? NSTemporaryDirectory()) + "/msb-XXXXXX").utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw BackupError.failed("cannot create a temporary folder: \(Errno.last.description)")
        }
        return PrivateDir(path: String(cString: template))
    }

    public func remove() {
        try? TreeRemover.remove(path)
    }
}
