/// Documented exit codes (README "Exit codes"). sysexits(3) values where one fits.
public enum ExitCode: Int32, Sendable, Codable {
    case success = 0
    /// The run failed after it started changing things; services were started again and leftovers removed.
    case failed = 1
    /// A backup was taken but a non-fatal step failed (metrics, prune).
    case partial = 3
    /// Bad command line.
    case usage = 64
    /// Bad input data: a corrupt, truncated or tampered archive; malformed apt hook input.
    case dataError = 65
    /// Preflight: something needed is unavailable (database, pg_dump, snapshot method, free space).
    case unavailable = 69
    /// Cannot create the output (destination not writable).
    case cantCreate = 73
    /// Another run holds the lock.
    case locked = 75
    /// Not running as root.
    case noPermission = 77
    /// Bad configuration file.
    case config = 78
}

/// Every error the tool reports: one line saying what is wrong and how to fix it, and an exit code.
public struct BackupError: Error, Sendable, CustomStringConvertible {
    public var code: ExitCode
    public var message: String
    public var hint: String?

    public init(_ code: ExitCode, _ message: String, hint: String? = nil) {
        self.code = code
        self.message = message
        self.hint = hint
    }

    public var description: String {
        if let hint { return "\(message) (\(hint))" }
        return message
    }

    public static func config(_ m: String, hint: String? = nil) -> BackupError { .init(.config, m, hint: hint) }
    public static func unavailable(_ m: String, hint: String? = nil) -> BackupError { .init(.unavailable, m, hint: hint) }
    public static func failed(_ m: String, hint: String? = nil) -> BackupError { .init(.failed, m, hint: hint) }
    public static func data(_ m: String, hint: String? = nil) -> BackupError { .init(.dataError, m, hint: hint) }
}

/// An error from a C call or a system call: the function, errno, and the library's message.
public struct SystemCallError: Error, Sendable, CustomStringConvertible {
    public var function: String
    public var errno: Int32
    public var message: String
    public init(_ function: String, errno: Int32, message: String) {
        self.function = function
        self.errno = errno
        self.message = message
    }
    public var description: String { "\(function): \(message)" + (errno != 0 ? " (errno \(errno))" : "") }
}
