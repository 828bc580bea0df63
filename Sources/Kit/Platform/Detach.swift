import Foundation
import Subprocess
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

extension Command {
    /// Starts `executable` so that it outlives us and holds nothing of ours: through
    /// `setsid --fork` (a double fork: setsid forks the program into a new session and exits at
    /// once, so the program is re-parented to init), with stdin, stdout and stderr on /dev/null
    /// (an apt hook's caller waits for its pipes to close) and no other descriptor inherited.
    /// Returns once setsid has exited, i.e. once the program has started.
    public static func spawnDetached(_ executable: String, _ arguments: [String]) async throws {
        guard let setsid = find("setsid", extraDirs: ["/usr/bin", "/bin"]) else {
            throw BackupError.unavailable("setsid was not found", hint: "install util-linux")
        }
        var opts = PlatformOptions()
        opts.createSession = true
        do {
            let r = try await Subprocess.run(.path(FilePath(setsid)), arguments: Arguments(["--fork", executable] + arguments),
                                             platformOptions: opts, input: .none, output: .discarded, error: .discarded)
            let status = code(r.terminationStatus)
            guard status == 0 else {
                throw BackupError.failed("cannot start \(executable) in the background: setsid exited with \(status)")
            }
        } catch let e as SubprocessError {
            throw BackupError(.unavailable, "cannot run \(setsid): \(e)", hint: "check that util-linux is installed")
        }
    }
}
