import Foundation
import Subprocess
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// The result of a program we ran.
public struct CommandResult: Sendable {
    public var executable: String
    /// The exit code, or 128 + signal number when it was killed.
    public var status: Int32
    public var stdout: String
    public var stderr: String
    public var succeeded: Bool { status == 0 }
    /// The last non-empty line of stderr (else stdout), for one-line error messages.
    public var lastErrorLine: String {
        let pick = { (s: String) in s.split(separator: "\n").last { !$0.trimmingCharacters(in: .whitespaces).isEmpty }.map(String.init) }
        return pick(stderr) ?? pick(stdout) ?? "exit status \(status)"
    }
}

/// Runs programs with argument arrays through swift-subprocess: never a shell string.
public enum Command {
    /// The first executable named `name` on PATH (or `name` itself when it holds a slash).
    public static func find(_ name: String, extraDirs: [String] = []) -> String? {
        if name.contains("/") { return FileManager.default.isExecutableFile(atPath: name) ? name : nil }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin"
        for dir in path.split(separator: ":").map(String.init) + extraDirs {
            let p = dir + "/" + name
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    /// Runs `executable` with `arguments`; collects stdout and stderr (up to `limit` bytes each).
    /// `environment` adds to (or, with nil, removes from) the inherited environment.
    public static func run(
        _ executable: String, _ arguments: [String],
        environment: [String: String?] = [:],
        asUser: String? = nil,
        input: String? = nil,
        stdoutTo fd: FileDescriptor? = nil,
        workingDirectory: String? = nil,
        limit: Int = 8 << 20
    ) async throws -> CommandResult {
        var executable = executable, arguments = arguments
        // Another user through runuser(1): swift-subprocess would fork() a multi-threaded process to
        // change the uid, which can deadlock in the child; posix_spawn of runuser cannot.
        if let asUser, let pw = getpwnam(asUser), pw.pointee.pw_uid != geteuid() {
            guard let runuser = find("runuser", extraDirs: ["/usr/sbin", "/sbin"]) else {
                throw BackupError.unavailable("runuser was not found", hint: "install util-linux")
            }
            arguments = ["-u", asUser, "--", executable] + arguments
            executable = runuser
        }
        let opts = PlatformOptions()
        let exe = Executable.path(FilePath(executable))
        let args = Arguments(arguments)
        let environ = inherited(updating: environment)
        let cwd = workingDirectory.map { FilePath($0) }
        do {
            if let fd {
                let r = try await Subprocess.run(exe, arguments: args, environment: environ, workingDirectory: cwd, platformOptions: opts,
                                                 input: .none, output: .fileDescriptor(fd, closeAfterSpawningProcess: false),
                                                 error: .string(limit: limit))
                return CommandResult(executable: executable, status: code(r.terminationStatus), stdout: "", stderr: r.standardError)
            }
            if let input {
                let r = try await Subprocess.run(exe, arguments: args, environment: environ, workingDirectory: cwd, platformOptions: opts,
                                                 input: .string(input), output: .string(limit: limit), error: .string(limit: limit))
                return CommandResult(executable: executable, status: code(r.terminationStatus), stdout: r.standardOutput, stderr: r.standardError)
            }
            let r = try await Subprocess.run(exe, arguments: args, environment: environ, workingDirectory: cwd, platformOptions: opts,
                                             input: .none, output: .string(limit: limit), error: .string(limit: limit))
            return CommandResult(executable: executable, status: code(r.terminationStatus), stdout: r.standardOutput, stderr: r.standardError)
        } catch let e as SubprocessError {
            throw BackupError(.unavailable, "cannot run \(executable): \(e)", hint: "check that it is installed and executable")
        }
    }

    /// This process's environment with `changes` applied (a nil value removes the variable).
    static package func inherited(updating changes: [String: String?]) -> Environment {
        var env: [Environment.Key: String?] = [:]
        for (k, v) in changes { env[Environment.Key(stringLiteral: k)] = v }
        return Environment.inherit.updating(env)
    }

    static package func code(_ t: TerminationStatus) -> Int32 {
        switch t {
        case .exited(let c): return Int32(c)
        case .signaled(let s): return 128 + Int32(s)
        }
    }
}



extension Command {
    /// Runs a child in its own session (so a terminal's SIGINT does not reach it) with `stdin` as
    /// its standard input; returns when it exits.
    static package func runDetachedChild(_ executable: String, _ arguments: [String], stdin: FileDescriptor, stdout: FileDescriptor) async throws -> Int32 {
        var opts = PlatformOptions()
        opts.createSession = true
        let r = try await Subprocess.run(.path(FilePath(executable)), arguments: Arguments(arguments),
                                         platformOptions: opts,
                                         input: .fileDescriptor(stdin, closeAfterSpawningProcess: true),
                                         output: .fileDescriptor(stdout, closeAfterSpawningProcess: true),
                                         error: .currentStandardError)
        return code(r.terminationStatus)
    }
}
