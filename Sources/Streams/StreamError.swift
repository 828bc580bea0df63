import SystemPackage
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Errors thrown by the sinks and filters in this module.
public enum StreamError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A system call failed. `errno` is the value the call left in `errno`.
    case system(operation: String, errno: Int32, path: String?)
    /// A zlib call returned `code` (Z_*), with zlib's own message when it gave one.
    case zlib(operation: String, code: Int32, message: String?)
    /// `write` or `finish` was called after `finish`.
    case alreadyFinished
    /// A parameter was out of range (compression level, block size, thread count, ...).
    case invalidArgument(String)

    /// The errno of a `.system` error, nil otherwise.
    public var errno: Int32? {
        if case .system(_, let e, _) = self { return e }
        return nil
    }

    public var description: String {
        switch self {
        case .system(let op, let e, let path):
            let what = path.map { "\(op) \($0)" } ?? op
            return "\(what): \(Errno(rawValue: e).description) (errno \(e))"
        case .zlib(let op, let code, let message):
            return "\(op): zlib error \(code)\(message.map { ": \($0)" } ?? "")"
        case .alreadyFinished:
            return "stream already finished"
        case .invalidArgument(let text):
            return "invalid argument: \(text)"
        }
    }
}
