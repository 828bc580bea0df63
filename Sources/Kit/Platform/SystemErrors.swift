// System call errors are swift-system's Errno everywhere (its description is strerror's text).
@_exported import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

extension Errno {
    /// errno as left by the C call just made.
    package static var last: Errno { Errno(rawValue: errno) }
}

/// An error that keeps the errno of the call that failed, so that code deciding by it (a full
/// destination is ENOSPC or EDQUOT) asks the value and never matches the message's text. The
/// wrappers' and the streams' errors conform where both modules are seen (MSBArchive).
public protocol ErrnoCarrying: Error {
    /// The errno the failed call left, or nil when the error did not come from one.
    var carriedErrno: Errno? { get }
}

extension SystemCallError: ErrnoCarrying {
    public var carriedErrno: Errno? { errno != 0 ? Errno(rawValue: errno) : nil }
}

extension Errno {
    /// Whether this errno says that a file system is full (ENOSPC) or a quota is spent (EDQUOT).
    package var isOutOfSpace: Bool { self == .noSpace || self == .diskQuotaExceeded }
}
