import Foundation
import LibArchive
import Subprocess
import SystemPackage
import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// Feeds dump.sql from the archive straight into `psql -X -f -` (no copy on disk), and sorts
/// psql's complaints into the expected ones of a `pg_dumpall --clean` restore (the connected
/// role cannot be dropped, roles that still own objects, roles that already exist) and real errors.
enum DumpLoader {
    struct Outcome: Sendable {
        var status: Int32
        /// ERROR/FATAL lines that are not expected: the load failed when there is any.
        var errors: [String]
        /// Expected errors of a --clean restore into a live cluster.
        var expected: [String]
        var bytes: Int64
        var failed: Bool { status != 0 || !errors.isEmpty }
        var firstProblem: String {
            errors.first ?? (status != 0 ? "psql exited with status \(status)" : "")
        }
    }

    /// Errors a `pg_dumpall --clean` style restore makes on a cluster that has the roles already.
    static func isExpected(_ line: String) -> Bool {
        if line.contains("ERROR:  current user cannot be dropped") { return true }
        if line.contains("ERROR:  role \"") && line.hasSuffix("\" already exists") { return true }
        if line.contains("ERROR:  role \"") && line.contains("\" cannot be dropped because some objects depend on it") { return true }
        return false
    }

    static func classify(_ log: String) -> (errors: [String], expected: [String]) {
        var errors: [String] = [], expected: [String] = []
        for raw in log.split(separator: "\n") {
            let line = String(raw)
            let isError = line.contains("ERROR:") || line.contains("FATAL:") || line.contains("PANIC:")
                || (line.hasPrefix("psql:") && line.contains(": error: "))
            guard isError else { continue }
            if isExpected(line) { expected.append(line) } else { errors.append(line) }
        }
        return (errors, expected)
    }

    /// Runs psql on `database` with dump.sql from `archive` on its standard input. psql's stderr
    /// goes to `errorLog` (a file in a private folder), which is read back and classified.
    static func load(archive: String, psql: String, database: String, environment: [String: String?],
                     asUser: String?, errorLog: String) async throws -> Outcome {
        signal(SIGPIPE, SIG_IGN)
        var fds: [Int32] = [0, 0]
        guard pipe2(&fds, O_CLOEXEC) == 0 else {
            throw BackupError.failed("cannot create a pipe for psql: \(String(cString: strerror(errno)))")
        }
        let readFD = fds[0], writeFD = fds[1]
        let logFD = open(errorLog, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard logFD >= 0 else {
            close(readFD); close(writeFD)
            throw BackupError.failed("cannot create \(errorLog): \(String(cString: strerror(errno)))")
        }
        defer { close(logFD) }

        let writer = Task.detached { () -> Result<Int64, any Error> in
            do { return .success(try await Blocking.run { try streamDump(archive: archive, to: writeFD) }) } catch { return .failure(error) }
        }

        var executable = psql
        var arguments = ["-X", "-q", "-v", "ON_ERROR_STOP=0", "-f", "-", "--no-password", database]
        if let asUser, let pw = getpwnam(asUser), pw.pointee.pw_uid != geteuid() {
            guard let runuser = Command.find("runuser", extraDirs: ["/usr/sbin", "/sbin"]) else {
                close(readFD)
                _ = await writer.value
                throw BackupError.unavailable("runuser was not found", hint: "install util-linux")
            }
            arguments = ["-u", asUser, "--", executable] + arguments
            executable = runuser
        }
        var env: [Environment.Key: String?] = [:]
        for (k, v) in environment { env[Environment.Key(stringLiteral: k)] = v }
        let status: Int32
        do {
            let r = try await Subprocess.run(
                .path(FilePath(executable)), arguments: Arguments(arguments),
                environment: Environment.inherit.updating(env),
                input: .fileDescriptor(FileDescriptor(rawValue: readFD), closeAfterSpawningProcess: false),
                output: .discarded,
                error: .fileDescriptor(FileDescriptor(rawValue: logFD), closeAfterSpawningProcess: false))
            status = Command.code(r.terminationStatus)
        } catch {
            close(readFD)  // the writer gets EPIPE and stops
            _ = await writer.value
            throw BackupError.unavailable("cannot run \(psql): \(error)", hint: "install the PostgreSQL client of the server's version")
        }
        close(readFD)
        let written = await writer.value

        // The first 8 MiB of psql's messages are plenty to tell what went wrong.
        let log = FileHandle(forReadingAtPath: errorLog).map { h in
            defer { try? h.close() }
            return String(decoding: (try? h.read(upToCount: 8 << 20)) ?? Data(), as: UTF8.self)
        } ?? ""
        var (errors, expected) = classify(log)
        var bytes: Int64 = 0
        switch written {
        case .success(let n): bytes = n
        case .failure(let e):
            // psql stopping early shows as a broken pipe here; its own message says more.
            if !(e is PipeClosed) { errors.insert("reading dump.sql from the archive failed: \(e)", at: 0) }
            else if errors.isEmpty && status == 0 { errors.append("psql stopped reading dump.sql before its end") }
        }
        return Outcome(status: status, errors: errors, expected: expected, bytes: bytes)
    }

    struct PipeClosed: Error {}

    /// Writes dump.sql's data to `fd`, then closes it.
    static func streamDump(archive: String, to fd: Int32) throws -> Int64 {
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 256 * 1024)
        do {
            let reader = try TarReader(path: archive)
            while let h = try reader.nextHeader() {
                guard h.path == "dump.sql" else { try reader.skipData(); continue }
                var total: Int64 = 0
                try buffer.withUnsafeMutableBytes { buf in
                    while true {
                        let n = try reader.readData(into: buf)
                        if n == 0 { break }
                        var off = 0
                        while off < n {
                            let w = write(fd, buf.baseAddress! + off, n - off)
                            if w < 0 {
                                if errno == EINTR { continue }
                                if errno == EPIPE { throw PipeClosed() }
                                throw BackupError.failed("writing to psql: \(String(cString: strerror(errno)))")
                            }
                            off += w
                        }
                        total += Int64(n)
                    }
                }
                return total
            }
        } catch let e as ArchiveError {
            throw BackupError.data("reading \(archive): \(e.message)")
        }
        throw BackupError.data("\(archive) has no dump.sql")
    }
}
