import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The one posix_spawn (no fork of this multi-threaded process) for a program whose descriptors
/// we hand over ourselves: psql reading a dump part from a pipe, and the tests' children.
/// `Command` (swift-subprocess) runs everything else.
package enum Spawn {
    /// Where one of the child's standard descriptors comes from or goes to.
    package enum Stream {
        /// /dev/null (read-only for stdin, write-only for stdout and stderr).
        case null
        /// This descriptor of ours (dup2'd in the child; ours stays open).
        case fd(Int32)
    }

    package struct Options {
        package var stdin: Stream = .null
        package var stdout: Stream = .null
        package var stderr: Stream = .null
        /// Its own process group, so that a terminal's Ctrl-C reaches us and not the child.
        package var ownProcessGroup = false
        package init(stdin: Stream = .null, stdout: Stream = .null, stderr: Stream = .null, ownProcessGroup: Bool = false) {
            self.stdin = stdin
            self.stdout = stdout
            self.stderr = stderr
            self.ownProcessGroup = ownProcessGroup
        }
    }

    typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    /// posix_spawn_file_actions_addclosefrom_np (glibc 2.34+; Swift does not import it).
    static let addCloseFrom: AddCloseFrom? = {
        guard let h = dlopen(nil, RTLD_NOW), let sym = dlsym(h, "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(sym, to: AddCloseFrom.self)
    }()

    /// Whether the child gets no descriptor beyond 0, 1 and 2 (false before glibc 2.34, where
    /// only the descriptors marked close-on-exec are closed).
    package static var closesOtherDescriptors: Bool { addCloseFrom != nil }

    /// Starts `argv[0]` (a path) with `argv` and exactly `env`: the descriptors of `options`,
    /// every other descriptor closed (where glibc can), an empty signal mask and default signal
    /// actions. The child's PID (reap it with waitpid); throws posix_spawn's error.
    package static func start(_ argv: [String], env: [String: String], _ options: Options) throws(Errno) -> pid_t {
        var fa = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fa)
        defer { posix_spawn_file_actions_destroy(&fa) }
        for (target, stream) in [(Int32(0), options.stdin), (1, options.stdout), (2, options.stderr)] {
            switch stream {
            case .null: posix_spawn_file_actions_addopen(&fa, target, "/dev/null", target == 0 ? O_RDONLY : O_WRONLY, 0)
            case .fd(let fd): posix_spawn_file_actions_adddup2(&fa, fd, target)
            }
        }
        if let closeFrom = addCloseFrom { _ = closeFrom(&fa, 3) }
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setsigdefault(&attr, &all)
        var flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
        if options.ownProcessGroup {
            posix_spawnattr_setpgroup(&attr, 0)
            flags |= POSIX_SPAWN_SETPGROUP
        }
        posix_spawnattr_setflags(&attr, Int16(flags))
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (cArgs + cEnv).forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &fa, &attr, cArgs, cEnv)
        guard rc == 0 else { throw Errno(rawValue: rc) }
        return pid
    }
}
