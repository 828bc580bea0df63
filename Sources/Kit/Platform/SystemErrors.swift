// System call errors are swift-system's Errno everywhere (its description is strerror's text).
@_exported import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

extension Errno {
    /// errno as left by the C call just made.
    package static var last: Errno { Errno(rawValue: errno) }
}
