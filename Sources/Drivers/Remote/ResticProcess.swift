import Foundation
import MSBKit
import Subprocess
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// One restic run: its exit status, stdout (unless it went to a descriptor) and stderr, and the
/// error of the feed that ran beside it.
struct ResticRun: Sendable {
    var status: Int32
    var stdout: String
    var stderr: String
    var feedError: (any Error)?
}

/// Runs restic through swift-subprocess with an argument array (never a shell), stdin from a
/// descriptor (closed in this process once restic has started) and stdout to a descriptor or
/// collected. A `feed` runs while restic runs; when it throws, restic gets SIGINT (it then saves
/// nothing, removes its lock and exits 130) before anything can close its stdin.
enum ResticProcess {
    static func run(executable: String, arguments: [String], environment: [String: String?],
                    stdin: FileDescriptor? = nil, stdoutTo: FileDescriptor? = nil,
                    feed: (@Sendable () async throws -> Void)? = nil,
                    limit: Int = 16 << 20) async throws -> ResticRun {
        var env: [Environment.Key: String?] = [:]
        for (k, v) in environment { env[Environment.Key(stringLiteral: k)] = v }
        let config = Configuration(executable: .path(FilePath(executable)), arguments: Arguments(arguments),
                                   environment: Environment.inherit.updating(env))
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
                return ResticRun(status: code(r.terminationStatus), stdout: "", stderr: r.standardError, feedError: r.closureResult)
            case (let i?, nil):
                let r = try await Subprocess.run(config, input: .fileDescriptor(i, closeAfterSpawningProcess: true),
                                                 output: .string(limit: limit), error: .string(limit: limit)) { ex in
                    await body { try? ex.send(signal: .interrupt) }
                }
                return ResticRun(status: code(r.terminationStatus), stdout: r.standardOutput, stderr: r.standardError, feedError: r.closureResult)
            case (nil, let o?):
                let r = try await Subprocess.run(config, input: .none,
                                                 output: .fileDescriptor(o, closeAfterSpawningProcess: false), error: .string(limit: limit)) { ex in
                    await body { try? ex.send(signal: .interrupt) }
                }
                return ResticRun(status: code(r.terminationStatus), stdout: "", stderr: r.standardError, feedError: r.closureResult)
            case (nil, nil):
                let r = try await Subprocess.run(config, input: .none, output: .string(limit: limit), error: .string(limit: limit)) { ex in
                    await body { try? ex.send(signal: .interrupt) }
                }
                return ResticRun(status: code(r.terminationStatus), stdout: r.standardOutput, stderr: r.standardError, feedError: r.closureResult)
            }
        } catch let e as SubprocessError {
            throw BackupError(.unavailable, "cannot run \(executable): \(e)", hint: "check that restic is installed (apt install restic)")
        }
    }

    static func code(_ t: TerminationStatus) -> Int32 {
        switch t {
        case .exited(let c): return Int32(c)
        case .signaled(let s): return 128 + Int32(s)
        }
    }
}
