import MSBKit
import SystemPackage

/// One restic run: the kit's `FedRun` (status, stdout, stderr, the feed's error).
typealias ResticRun = FedRun

/// Runs restic through the kit's one streamed-stdin runner (`Command.runFed`): an argument array,
/// stdin from a descriptor that `feed` fills while restic runs; when the feed throws, restic gets
/// SIGINT (it then saves nothing, removes its lock and exits 130) before its stdin can close.
enum ResticProcess {
    static func run(executable: String, arguments: [String], environment: [String: String?],
                    stdin: FileDescriptor? = nil, stdoutTo: FileDescriptor? = nil,
                    feed: (@Sendable () async throws -> Void)? = nil) async throws -> ResticRun {
        try await Command.runFed(executable, arguments, environment: environment, stdin: stdin, stdoutTo: stdoutTo, feed: feed,
                                 hint: "check that restic is installed (apt install restic)")
    }
}
