/// A message's syslog priority, chosen where the message is written and passed with it to the
/// command line, which prefixes it on the journal (`<3>`) and filters it by `-q` and `-v`: the text
/// is never inspected for a priority.
public enum LogLevel: Int32, Sendable, CaseIterable {
    case critical = 2, error = 3, warning = 4, notice = 5, info = 6, debug = 7
}

/// Where a command's messages go: each with its priority.
public typealias LogSink = @Sendable (_ level: LogLevel, _ line: String) -> Void

/// How much the command line prints on stderr: `-q` errors only, the default everything but the
/// steps, `-v` every step too.
public enum Verbosity: Sendable {
    case quiet, normal, verbose

    public func shows(_ level: LogLevel) -> Bool {
        switch self {
        case .quiet: level.rawValue <= LogLevel.error.rawValue
        case .normal: level.rawValue <= LogLevel.info.rawValue
        case .verbose: true
        }
    }

    /// Progress (a bar or lines) is shown unless `-q`.
    public var showsProgress: Bool { self != .quiet }
}
