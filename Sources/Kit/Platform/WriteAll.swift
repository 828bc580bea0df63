#if canImport(Glibc)
import Glibc
#endif

/// The one full write: the tool's writers to a descriptor (AtomicFile, the gzip → restic bridge,
/// psql's log, the .deb copies) go through here.
extension Errno {
    /// Writes all of `bytes` to `fd`: a short write is continued and `EINTR` retried. Throws the
    /// `Errno` of the write that failed (`EAGAIN` included, for a non-blocking descriptor).
    package static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(Errno) {
        if let e = fullWrite(fd, bytes) { throw Errno(rawValue: e) }
    }

    /// `writeAll` of an array.
    package static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws(Errno) {
        if let e = bytes.withUnsafeBytes({ fullWrite(fd, $0) }) { throw Errno(rawValue: e) }
    }
}

/// write(2) until all of `bytes` is written; the errno of the write that failed, else nil.
private func fullWrite(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int32? {
    guard let base = bytes.baseAddress else { return nil }
    var off = 0
    while off < bytes.count {
        let n = write(fd, base + off, bytes.count - off)
        if n < 0 {
            if errno == EINTR { continue }
            return errno
        }
        off += n
    }
    return nil
}
