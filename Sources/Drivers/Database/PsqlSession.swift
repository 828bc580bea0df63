import Foundation
import MSBKit
import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// One psql reading a part of dump.sql from a pipe: never as root, restricted by our own random
/// `\restrict` key (so it refuses every meta-command in the part), its messages with SQLSTATEs
/// (`-v VERBOSITY=verbose`) written to its own unnamed file and appended to the run's log when it
/// ends (sessions run side by side: their messages never interleave).
final package class PsqlSession {
    package let pid: pid_t
    private var fd: Int32
    private var buffer: [UInt8] = []
    /// Bytes of `buffer` already written to the pipe.
    private var sent = 0
    /// Flushes by itself every 256 KiB (one session at a time); false for a loader that writes
    /// to several sessions without blocking on any one (`writeSome`).
    package var autoFlush = true
    private let ownLog: Int32
    private let runLog: Int32
    /// Lines sent so far (psql numbers its messages by them).
    private(set) package var linesSent = 0
    /// psql line -> dump.sql line, at each point where the two counts drift apart.
    private var anchors: [(psql: Int, dump: Int)] = []
    package let context: DumpContext
    /// Where this session's messages are in the run's log, once it has ended.
    private(set) package var logStart: Int64 = 0
    private(set) package var logEnd: Int64 = 0

    package struct Setup {
        package var psql: String
        /// The OS user psql runs as (never root).
        package var osUser: String
        /// PG* variables for psql (PGHOST, PGUSER, PGPASSFILE ...); every inherited PG* variable is dropped.
        package var environment: [String: String?]
        /// The run's log (each session's messages are appended to it when the session ends).
        package var logFD: Int32
        /// A folder only root can write, for each session's own (unnamed) log file.
        package var logDir: String
    }

    /// An unnamed 0600 file in `dir` (O_TMPFILE; else a fresh name unlinked at once).
    static package func unnamedFile(in dir: String) throws -> Int32 {
        // O_TMPFILE is __O_TMPFILE | O_DIRECTORY, a macro Swift does not import (its value on x86-64 and arm64).
        let fd = open(dir, 0o20000000 | O_DIRECTORY | O_RDWR | O_CLOEXEC, 0o600)
        if fd >= 0 { return fd }
        let path = dir + "/psql-\(getpid())-\(randomKey().prefix(12)).log"
        let named = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard named >= 0 else { throw BackupError.failed("cannot create a log file in \(dir): \(Errno.last.description)") }
        unlink(path)
        return named
    }

    package init(setup: Setup, database: String, context: DumpContext) throws {
        self.context = context
        runLog = setup.logFD
        guard let runuser = Command.find("runuser", extraDirs: ["/usr/sbin", "/sbin"]) else {
            throw BackupError.unavailable("runuser was not found", hint: "install util-linux")
        }
        guard setup.osUser != "root", let pw = getpwnam(setup.osUser), pw.pointee.pw_uid != 0 else {
            throw BackupError.failed("refusing to run psql as \(setup.osUser): it must not run as root")
        }
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("PG") && $0.key != "LANGUAGE" && !$0.key.hasPrefix("LC_") }
        for (k, v) in setup.environment { env[k] = v }
        // The database goes through PGDATABASE: psql would read a -d argument holding '=' as a connection string.
        env["PGDATABASE"] = database
        env["LC_ALL"] = "C"
        env["LANG"] = "C"
        let argv = [runuser, "-u", setup.osUser, "--", setup.psql, "-X", "-q", "-v", "ON_ERROR_STOP=0", "-v", "VERBOSITY=verbose",
                    "--no-password", "-f", "-"]
        let log = try PsqlSession.unnamedFile(in: setup.logDir)
        var fds: [Int32] = [0, 0]
        guard pipe2(&fds, O_CLOEXEC) == 0 else {
            close(log)
            throw BackupError.failed("cannot create a pipe for psql: \(Errno.last.description)")
        }
        do {
            pid = try PsqlSession.spawn(argv, env: env, stdin: fds[0], stderr: log)
        } catch {
            close(fds[0]); close(fds[1]); close(log)
            throw error
        }
        close(fds[0])
        fd = fds[1]
        ownLog = log
        // Our key first: from here on psql runs no meta-command but `\unrestrict <this key>`.
        try write(Array("\\restrict \(PsqlSession.randomKey())\n".utf8))
        linesSent = 1
    }

    deinit {
        if fd >= 0 { close(fd) }
        close(ownLog)
    }

    static package func randomKey() -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        var bytes = [UInt8](repeating: 0, count: 48)
        // SystemRandomNumberGenerator reads getrandom(2).
        var rng = SystemRandomNumberGenerator()
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255, using: &rng) }
        return String(bytes.map { alphabet[Int($0) % alphabet.count] })
    }

    /// Notes that the next line sent is dump.sql's line `dumpLine`.
    package func sync(dumpLine: Int) {
        let psqlLine = linesSent + 1
        if let last = anchors.last, dumpLine - psqlLine == last.dump - last.psql { return }
        anchors.append((psqlLine, dumpLine))
    }

    /// dump.sql's line for psql's line `n` of this part.
    package func dumpLine(_ n: Int) -> Int {
        guard let a = anchors.last(where: { $0.psql <= n }) else { return n }
        return a.dump + (n - a.psql)
    }

    package func send(_ line: UnsafeBufferPointer<UInt8>) throws {
        buffer.append(contentsOf: line)
        buffer.append(0x0A)
        linesSent += 1
        if autoFlush && buffer.count >= 256 * 1024 { try flush() }
    }

    /// Bytes sent but not yet written to psql's pipe.
    package var pending: Int { buffer.count - sent }
    /// The pipe, for poll(2).
    package var pipeFD: Int32 { fd }

    package func send(_ line: String) throws {
        var b = Array(line.utf8)
        try b.withUnsafeMutableBufferPointer { try send(UnsafeBufferPointer($0)) }
    }

    private func write(_ bytes: [UInt8]) throws {
        buffer.append(contentsOf: bytes)
        try flush()
    }

    package struct Closed: Error {}

    /// Makes the pipe non-blocking: `writeSome` then writes what psql takes now, and returns.
    package func nonBlocking() throws {
        autoFlush = false
        // A 1 MiB pipe (Linux's default pipe-max-size) holds what psql will read next, in the
        // kernel rather than in our buffer; a smaller limit leaves the default, which also works.
        _ = fcntl(fd, 1031 /* F_SETPIPE_SZ */, 1 << 20)
        let flags = fcntl(fd, F_GETFL)
        guard flags >= 0, fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0 else {
            throw BackupError.failed("cannot make psql's pipe non-blocking: \(Errno.last.description)")
        }
    }

    /// Writes what the pipe takes now (all of it on a blocking pipe); whether anything was written.
    @discardableResult
    package func writeSome() throws -> Bool {
        var wrote = 0
        while sent < buffer.count {
            let w = buffer.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + sent, $0.count - sent) }
            if w < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN { break }
                if errno == EPIPE { throw Closed() }
                throw BackupError.failed("writing to psql: \(Errno.last.description)")
            }
            sent += w
            wrote += w
        }
        if sent == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            sent = 0
        } else if sent >= 1 << 20 && sent * 2 >= buffer.count {
            buffer.removeFirst(sent)
            sent = 0
        }
        return wrote > 0
    }

    /// Writes everything sent so far, waiting for psql to take it.
    package func flush() throws {
        while pending > 0 {
            try writeSome()
            if pending > 0 {
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                _ = poll(&p, 1, 1000)
                try Interruption.check()
            }
        }
    }

    /// Ends psql's input and waits for it; its exit status. Its messages are appended to the run's
    /// log (`logStart..<logEnd`).
    package func finish() -> Int32 {
        if fd >= 0 { try? flush() }
        closeInput()
        var status: Int32 = 0
        var waited = true
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { waited = false; break }
        }
        appendOwnLog()
        guard waited else { return 127 }
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    /// Ends psql's input now; what it has not taken yet is dropped.
    package func closeInput() {
        if fd >= 0 { close(fd); fd = -1 }
    }

    private func appendOwnLog() {
        logStart = Int64(lseek(runLog, 0, SEEK_END))
        defer { logEnd = Int64(lseek(runLog, 0, SEEK_END)) }
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        var at: off_t = 0
        while true {
            let n = chunk.withUnsafeMutableBytes { pread(ownLog, $0.baseAddress, $0.count, at) }
            guard n > 0 else { break }
            do { try Errno.writeAll(runLog, Array(chunk[0..<n])) } catch { return }
            at += off_t(n)
        }
    }

    /// posix_spawn (no fork of this multi-threaded process): stdin from the pipe, stdout discarded,
    /// stderr to the log, no other descriptor, default signals, its own process group (a terminal's
    /// Ctrl-C reaches us, not psql).
    static package func spawn(_ argv: [String], env: [String: String], stdin: Int32, stderr: Int32) throws -> pid_t {
        do {
            return try Spawn.start(argv, env: env, .init(stdin: .fd(stdin), stdout: .null, stderr: .fd(stderr), ownProcessGroup: true))
        } catch {
            throw BackupError.unavailable("cannot run \(argv[0]): \(error.description)", hint: "install util-linux and the PostgreSQL client")
        }
    }
}

/// psql's messages sorted by SQLSTATE, not by their (translated) text.
package enum PsqlMessages {
    /// One message line: `psql:<stdin>:12: ERROR:  42710: role "maas" already exists`, the
    /// severity and text in the server's language; or psql's own `psql:<stdin>:3: error: ...`.
    package struct Line: Equatable {
        package var psqlLine: Int?
        /// nil for psql's own errors (a refused meta-command, a lost connection).
        package var sqlstate: String?
        package var text: String
    }

    /// Parses one line of psql's stderr; nil when it is not a message line (DETAIL, HINT, LOCATION, ...).
    static package func parse(_ line: Substring) -> Line? {
        guard line.hasPrefix("psql:") else { return nil }
        // psql:<file>:<line>: <rest>, or psql: error: ... (connection failures).
        var rest = line.dropFirst(5)
        var number: Int?
        if !rest.hasPrefix(" ") {
            guard let c1 = rest.firstIndex(of: ":") else { return nil }
            rest = rest[rest.index(after: c1)...]
            let digits = rest.prefix { $0.isNumber }
            number = Int(digits)
            rest = rest.dropFirst(digits.count)
            guard rest.hasPrefix(":") else { return nil }
            rest = rest.dropFirst()
        }
        rest = rest.drop { $0 == " " }
        if rest.hasPrefix("error: ") || rest.hasPrefix("fatal: ") {
            return Line(psqlLine: number, sqlstate: nil, text: String(rest))
        }
        // <SEVERITY>:  <SQLSTATE>: text — the severity word is translated, the code is not.
        guard let sev = rest.range(of: ":  ") else { return nil }
        let after = rest[sev.upperBound...]
        let code = after.prefix(5)
        guard code.count == 5, code.allSatisfy({ ($0.isASCII && $0.isNumber) || ($0.isASCII && $0.isUppercase) }),
              after.dropFirst(5).hasPrefix(": ") else {
            return Line(psqlLine: number, sqlstate: nil, text: String(rest))
        }
        return Line(psqlLine: number, sqlstate: String(code), text: String(rest))
    }

    /// Codes a `pg_dumpall --clean` roles part makes on a live cluster: a role that exists already
    /// (42710, also for tablespaces), one that still owns objects (2BP01), the connected user
    /// (55006), a reserved name (42939).
    static package let expectedInRoles: Set<String> = ["42710", "2BP01", "55006", "42939"]
    /// Refused for lack of privilege (42501): a restore role that is not a superuser cannot change
    /// superuser roles; the roles stay as they are and the load goes on.
    static package let refusedInRoles: Set<String> = ["42501"]

    package enum Kind: Equatable { case error, expected, refused, notice }

    static package func kind(_ l: Line, context: DumpContext) -> Kind {
        guard let code = l.sqlstate else { return .error }
        let cls = code.prefix(2)
        if cls == "00" || cls == "01" || cls == "02" { return .notice }  // notices, warnings, no data
        if context == .cluster {
            if expectedInRoles.contains(code) { return .expected }
            if refusedInRoles.contains(code) { return .refused }
        }
        return .error
    }

    package struct Sorted: Equatable {
        package var errors: [Line] = []
        package var expected: [Line] = []
        package var refused: [Line] = []
    }

    static package func classify(_ log: Substring, context: DumpContext) -> Sorted {
        var out = Sorted()
        for raw in log.split(separator: "\n") {
            guard let l = parse(raw) else { continue }
            switch kind(l, context: context) {
            case .error: out.errors.append(l)
            case .expected: out.expected.append(l)
            case .refused: out.refused.append(l)
            case .notice: break
            }
        }
        return out
    }
}
