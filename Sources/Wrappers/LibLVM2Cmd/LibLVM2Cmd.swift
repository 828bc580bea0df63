// LibLVM2Cmd: thin typed wrapper over lvm2cmd.h, one Swift function per C call.
//
// liblvm2cmd runs LVM commands in-process (`lvm2_run(handle, "lvcreate ...")`) and hands every
// message to one process-wide log callback. The library is not thread-safe and the callback is
// global, so every use goes through `LVM2Cmd.run`, which holds one process-wide lock from
// lvm2_init to lvm2_exit and collects the messages of that one command.
import CLVM2Cmd
import Synchronization

/// Return values of lvm2_run (lvm2cmd.h).
public enum LVM2Status: Int32, Sendable {
    case succeeded = 1        // LVM2_COMMAND_SUCCEEDED
    case noSuchCommand = 2    // LVM2_NO_SUCH_COMMAND
    case invalidParameters = 3 // LVM2_INVALID_PARAMETERS
    case initFailed = 4       // LVM2_INIT_FAILED
    case processingFailed = 5 // LVM2_PROCESSING_FAILED
}

/// An LVM command that did not succeed: the command line, lvm2_run's return value and the
/// error-level messages LVM logged (what the lvm binary would print on stderr).
public struct LVM2Error: Error, Sendable, CustomStringConvertible {
    public var function: String
    public var commandLine: String
    public var status: Int32
    public var messages: [String]
    public var description: String {
        let what = LVM2Status(rawValue: status).map { "\($0)" } ?? "status \(status)"
        let detail = messages.isEmpty ? "" : ": " + messages.joined(separator: "; ")
        return "\(function)(\(commandLine)) \(what)\(detail)"
    }
}

/// What one command logged, split by level.
public struct LVM2Output: Sendable {
    /// Level 4 (LVM2_LOG_PRINT): the command's own output (reports, "Logical volume ... created"),
    /// and warnings, one entry per message.
    public var output: [String] = []
    /// Levels 2 and 3 (fatal, error).
    public var errors: [String] = []
    /// Output messages joined with newlines (a JSON report, for `--reportformat json`).
    public var text: String { output.joined(separator: "\n") }
}

/// One lvm2_init handle. Only valid while the global lock is held (inside `LVM2Cmd.run`).
public struct LVM2Handle: @unchecked Sendable {
    fileprivate let raw: UnsafeMutableRawPointer
}

/// The messages of the command now running; touched only with `lock` held.
nonisolated(unsafe) private var collected = LVM2Output()
private let lock = Mutex<Void>(())

/// The C-convention log callback: sorts messages by level into `collected`.
private let collect: lvm2_log_fn_t = { level, _, _, _, message in
    guard let message else { return }
    let text = String(cString: message)
    if level <= LVM2_LOG_ERROR {
        collected.errors.append(text)
    } else if level == LVM2_LOG_PRINT {
        collected.output.append(text)
    }
}

public enum LVM2Cmd {
    /// lvm2_log_fn: sets the process-wide log callback (nil restores LVM's own printing).
    public static func logFunction(_ function: lvm2_log_fn_t?) {
        lvm2_log_fn(function)
    }

    /// lvm2_init: a new command context (reads /etc/lvm/lvm.conf).
    public static func initialize() throws -> LVM2Handle {
        guard let raw = lvm2_init() else {
            throw LVM2Error(function: "lvm2_init", commandLine: "", status: LVM2Status.initFailed.rawValue,
                            messages: collected.errors)
        }
        return LVM2Handle(raw: raw)
    }

    /// lvm2_run: runs one command line (`"lvs --reportformat json"`); the library splits it on
    /// blanks, so `commandLine` must come from `commandLine(_:)`.
    public static func run(_ handle: LVM2Handle, commandLine: String) -> Int32 {
        lvm2_run(handle.raw, commandLine)
    }

    /// lvm2_exit: releases the handle.
    public static func exit(_ handle: LVM2Handle) {
        lvm2_exit(handle.raw)
    }

    /// Joins arguments into the line lvm2_run splits again. LVM's splitter knows no quoting, so an
    /// argument that is empty or holds a blank or a quote is refused instead of being split wrong.
    public static func commandLine(_ arguments: [String]) throws -> String {
        guard !arguments.isEmpty else {
            throw LVM2Error(function: "lvm2_run", commandLine: "", status: LVM2Status.invalidParameters.rawValue,
                            messages: ["empty command"])
        }
        for a in arguments where a.isEmpty || a.contains(where: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\"" || $0 == "'" || $0 == "\\" }) {
            throw LVM2Error(function: "lvm2_run", commandLine: arguments.joined(separator: " "),
                            status: LVM2Status.invalidParameters.rawValue,
                            messages: ["argument \"\(a)\" cannot be passed to liblvm2cmd (empty, blank or quote)"])
        }
        return arguments.joined(separator: " ")
    }

    /// Runs one LVM command in-process, e.g. `["lvcreate", "-s", "-n", "snap", "-l", "10", "vg/lv"]`:
    /// lvm2_log_fn + lvm2_init + lvm2_run + lvm2_exit under the process-wide lock. Returns what the
    /// command printed; throws `LVM2Error` with LVM's error messages when it did not succeed.
    public static func run(_ arguments: [String]) throws -> LVM2Output {
        let line = try commandLine(arguments)
        return try lock.withLock { _ in
            collected = LVM2Output()
            defer { collected = LVM2Output() }
            logFunction(collect)
            let handle = try initialize()
            let status = run(handle, commandLine: line)
            exit(handle)
            let result = collected
            guard status == LVM2Status.succeeded.rawValue else {
                throw LVM2Error(function: "lvm2_run", commandLine: line, status: status, messages: result.errors)
            }
            return result
        }
    }
}
