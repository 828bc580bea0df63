import Foundation
import MSBKit
import Digest
#if canImport(Glibc)
import Glibc
#endif

/// Copies a .deb and hashes what it copied: the backup records the SHA-256 of each saved .deb in
/// the manifest, and rollback copies each into a private folder, checks the hash of that copy and
/// hands only the copy to dpkg (nothing can change it between the check and the install).
package enum DebCopy {
    /// Copies `source` to `destination` (created new, mode 0600, never through a symlink), fsynced; returns the copy's SHA-256.
    static package func copy(_ source: String, to destination: String) throws -> String {
        let src = open(source, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard src >= 0 else { throw BackupError.failed("cannot open \(source): \(Errno.last.description)") }
        defer { close(src) }
        var st = stat()
        guard fstat(src, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            throw BackupError.failed("\(source) is not a regular file")
        }
        let dst = open(destination, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard dst >= 0 else { throw BackupError.failed("cannot create \(destination): \(Errno.last.description)") }
        var ok = false
        defer {
            close(dst)
            if !ok { unlink(destination) }
        }
        let digest = try SHA256()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = read(src, buffer.baseAddress, buffer.count)
            if n < 0 {
                if errno == EINTR { continue }
                throw BackupError.failed("cannot read \(source): \(Errno.last.description)")
            }
            if n == 0 { break }
            let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
            try digest.update(chunk)
            do { try Errno.writeAll(dst, chunk) } catch {
                throw BackupError.failed("cannot write \(destination): \(error.description)")
            }
        }
        guard fsync(dst) == 0 else { throw BackupError.failed("cannot write \(destination): \(Errno.last.description)") }
        ok = true
        return try digest.finalizeHex()
    }
}
