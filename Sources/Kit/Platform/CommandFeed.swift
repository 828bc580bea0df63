import Foundation
import Subprocess
import SystemPackage

/// One run of a program whose standard input is streamed: its exit status, stdout (unless it went
/// to a descriptor) and stderr, and the error of the feed that ran beside it.
package struct FedRun: Sendable {
    package var status: Int32
    package var stdout: String
    package var stderr: String
    package var feedError: (any Error)?
}

extension Command {
    /// Runs `executable` with an argument array (never a shell), stdin from a descriptor (closed in
    /// this process once the child has started; a pipe's read end, whose write end `feed` fills) and
    /// stdout to a descriptor or collected. `feed` runs while the child runs; when it throws, the
    /// child gets SIGINT before anything can close its stdin, so it never takes a short input for
    /// a whole one. `hint` goes with the error when the program cannot be started.
    package static func runFed(
        _ executable: String, _ arguments: [String],
        environment: [String: String?] = [:],
        stdin: FileDescriptor? = nil, stdoutTo: FileDescriptor? = nil,
        feed: (@Sendable () async throws -> Void)? = nil,
        limit: Int = 16 << 20, hint: String
    ) async throws -> FedRun {
        let config = Configuration(executable: .path(FilePath(executable)), arguments: Arguments(arguments),
                                   environment: inherited(updating: environment))
        let body: @Sendable (_ interrupt: @Sendable () -> Void) async -> (any Error)? = { interrupt in
            guard let feed else { return nil }
            do {
                try await feed()
                return nil
            } catch {
                interrupt()
                return error
            }
        }
        do {
            switch (stdin, stdoutTo) {
            case (let i?, let o?):
                let r = try await Subprocess.run(config, input: .fileDescriptor(i, closeAfterSpawningProcess: true),
                                                 output: .fileDescriptor(o, closeAfterSpawningProcess: false), error: .string(limit: limit)) { ex in
                    await body { try? ex.send(signal: .interrupt) }
                }
                return FedRun(status: code(r.terminationStatus), stdout: "", stderr: r.standardError, feedError: r.closureResult)
            case (let i?, nil):
                let r = try await Subprocess.run(config, input: .fileDescriptor(i, closeAfterSpawningProcess: true),
                                                 output: .string(limit: limit), error: .string(limit: limit)) { ex in
                    await body { try? ex.send(signal: .interrupt) }
                }
                return FedRun(status: code(r.terminationStatus), stdout: r.standardOutput, stderr: r.standardError, feedError: r.closureResult)
            case (nil, let o?):
                let r = try await Subprocess.run(config, input: .none,
                                                 output: .fileDescriptor(o, closeAfterSpawningProcess: false), error: .string(limit: limit)) { ex in
                    await body { try? ex.send(signal: .interrupt) }
                }
                return FedRun(status: code(r.terminationStatus), stdout: "", stderr: r.standardError, feedError: r.closureResult)
            case (nil, nil):
                let r = try await Subprocess.run(config, input: .none, output: .string(limit: limit), error: .string(limit: limit)) { ex in
                    await body { try? ex.send(signal: .interrupt) }
                }
                return FedRun(status: code(r.terminationStatus), stdout: r.standardOutput, stderr: r.standardError, feedError: r.closureResult)
            }
        } catch let e as SubprocessError {
            throw BackupError(.unavailable, "cannot run \(executable): \(e)", hint: hint)
        }
    }
}
