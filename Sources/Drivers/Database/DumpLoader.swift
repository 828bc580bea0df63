import Foundation
import MSBKit
import LibArchive
#if canImport(Glibc)
import Glibc
#endif

/// Loads dump.sql from the archive (streamed, no copy on disk) part by part: DumpSplitter cuts it at
/// each `\connect`; the roles part runs on the maintenance database, each database's part on its
/// new copy, which `create` makes (our own CREATE DATABASE) on the part's first `\connect`. Each part
/// goes to its own psql (PsqlSession: never root, meta-commands refused), whose messages are sorted
/// by SQLSTATE: in the roles part, roles that exist or still own objects are expected and privilege
/// refusals are reported; anything else is an error.
/// How one psql logs in: its OS user and PG* variables (user, host, port, passfile).
package struct PsqlLogin: Sendable {
    package var osUser: String
    package var environment: [String: String?]

    package init(osUser: String, environment: [String: String?]) {
        self.osUser = osUser
        self.environment = environment
    }
}

package enum DumpLoader {
    package struct Outcome: Sendable {
        /// The worst psql exit status.
        package var status: Int32
        /// Errors: the load failed when there is any.
        package var errors: [String]
        /// Expected errors of a --clean roles part on a live cluster.
        package var expected: [String]
        /// Role statements refused for lack of privilege (a restore role that is not a superuser).
        package var refused: [String]
        package var bytes: Int64
        /// What the roles part skipped (RolesGate.notes).
        package var notes: [String] = []
        package var failed: Bool { status != 0 || !errors.isEmpty }
        package var firstProblem: String {
            errors.first ?? (status != 0 ? "psql exited with status \(status)" : "")
        }
    }

    package struct Plan {
        package var psql: String
        package var osUser: String
        /// PG* variables for psql (host, port, user, passfile): see PostgresTarget.environment.
        package var environment: [String: String?]
        /// Dumped database -> the name it is loaded under.
        package var names: [String: String]
        /// Where the roles part runs.
        package var maintenanceDatabase: String
        /// Makes the copy of a dumped database (called once, before its part).
        package var create: (CreateDatabaseSpec, String) throws -> Void
        /// What the roles part may do (run with `osUser` and `environment`, the privileged login).
        package var roles: RolesGate
        /// How a database's part logs in: as the database's owner (the dump's `ALTER DATABASE ...
        /// OWNER TO`), never a superuser; called with the dumped database and its owner before its
        /// copy is made, throws when that owner may not be used.
        package var ownerLogin: (String, String) throws -> PsqlLogin
        /// psql sessions each database's part is loaded with (LoadRouter); 1 runs it as `psql -f` would.
        package var jobs = 1

        package init(psql: String, osUser: String, environment: [String: String?], names: [String: String], maintenanceDatabase: String,
                     roles: RolesGate, ownerLogin: @escaping (String, String) throws -> PsqlLogin,
                     create: @escaping (CreateDatabaseSpec, String) throws -> Void) {
            self.psql = psql
            self.osUser = osUser
            self.environment = environment
            self.names = names
            self.maintenanceDatabase = maintenanceDatabase
            self.roles = roles
            self.ownerLogin = ownerLogin
            self.create = create
        }
    }

    /// The sessions a load uses: `wanted`, but never more than half the connections the server has
    /// free (MAAS keeps running during the load and opens its own), and at least one.
    static package func sessions(wanted: Int, freeConnections: Int?) -> Int {
        guard let free = freeConnections else { return max(wanted, 1) }
        return max(1, min(wanted, free / 2))
    }

    static package func load(archive: String, plan: Plan, errorLog: String) async throws -> Outcome {
        let box = UncheckedSendable(plan)
        return try await Blocking.run { try loadNow(archive: archive, plan: box.value, errorLog: errorLog) }
    }

    static package func loadNow(archive: String, plan: Plan, errorLog: String) throws -> Outcome {
        signal(SIGPIPE, SIG_IGN)
        let logFD = open(errorLog, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard logFD >= 0 else { throw BackupError.failed("cannot create \(errorLog): \(Errno.last.description)") }
        defer { close(logFD) }
        let dir = (errorLog as NSString).deletingLastPathComponent
        let setup = PsqlSession.Setup(psql: plan.psql, osUser: plan.osUser, environment: plan.environment, logFD: logFD,
                                      logDir: dir.isEmpty ? "." : dir)
        let load = DumpLoad(archive: archive, plan: plan, setup: setup)
        var total: Int64 = 0
        let problems = try load.run { try forEachLine(archive: archive, bytes: &total, $0) }
        return try load.outcome(problems: problems, bytes: total, errorLog: errorLog)
    }

    /// Calls `handle` with each line of the archive's dump.sql (without its newline); whether there is one.
    static package func forEachLine(archive: String, bytes total: inout Int64, _ handle: (UnsafeBufferPointer<UInt8>) throws -> Void) throws -> Bool {
        let reader: TarReader
        do { reader = try TarReader(path: archive) } catch let e as ArchiveError { throw BackupError.data("reading \(archive): \(e.message)") }
        var carry: [UInt8] = []
        var n64: Int64 = 0
        defer { total += n64 }
        do {
            while let h = try reader.nextHeader() {
                guard h.path == "dump.sql" else { try reader.skipData(); continue }
                try reader.forEachChunk { chunk in
                    let buf = chunk.bindMemory(to: UInt8.self)
                    let n = buf.count
                    n64 += Int64(n)
                    var start = 0
                    while start < n {
                        guard let nl = memchr(buf.baseAddress! + start, 0x0A, n - start) else {
                            carry.append(contentsOf: UnsafeBufferPointer(rebasing: buf[start..<n]))
                            break
                        }
                        let end = buf.baseAddress!.distance(to: nl.assumingMemoryBound(to: UInt8.self))
                        if carry.isEmpty {
                            try handle(UnsafeBufferPointer(rebasing: buf[start..<end]))
                        } else {
                            carry.append(contentsOf: UnsafeBufferPointer(rebasing: buf[start..<end]))
                            try carry.withUnsafeBufferPointer { try handle($0) }
                            carry.removeAll(keepingCapacity: true)
                        }
                        start = end + 1
                    }
                }
                if !carry.isEmpty { try carry.withUnsafeBufferPointer { try handle($0) } }
                return true
            }
        } catch let e as ArchiveError {
            throw BackupError.data("reading dump.sql from \(archive): \(e.message)")
        }
        return false
    }

    private struct EndOfRolesPart: Error {}

    /// Preflight: reads dump.sql's roles part (up to its first database) through `gate`, sending
    /// nothing; throws the gate's refusal (65) before anything changes.
    static package func checkRolesPart(archive: String, names: [String: String], gate: RolesGate) throws {
        var splitter = DumpSplitter(names: names)
        var gate = gate
        var lineNo = 0, total: Int64 = 0
        do {
            _ = try forEachLine(archive: archive, bytes: &total) { line in
                lineNo += 1
                switch try splitter.next(line, number: lineNo) {
                case .pass: _ = try gate.feed(String(decoding: line, as: UTF8.self), number: lineNo)
                case .rewrite(let t): _ = try gate.feed(t, number: lineNo)
                case .skip: break
                case .connect(.cluster): break
                case .connect(.database):
                    _ = try gate.fix(owners: names.keys.compactMap { splitter.spec(for: $0)?.owner })
                    throw EndOfRolesPart()
                }
            }
            _ = try gate.fix(owners: [])
        } catch is EndOfRolesPart {}
    }
}
