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

    static package func load(archive: String, plan: Plan, errorLog: String) async throws -> Outcome {
        let box = UncheckedSendable(plan)
        return try await Blocking.run { try loadNow(archive: archive, plan: box.value, errorLog: errorLog) }
    }

    package struct Part {
        package var context: DumpContext
        package var session: PsqlSession
        package var logEnd: Int64
        package var status: Int32
    }

    static package func loadNow(archive: String, plan: Plan, errorLog: String) throws -> Outcome {
        signal(SIGPIPE, SIG_IGN)
        let logFD = open(errorLog, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard logFD >= 0 else { throw BackupError.failed("cannot create \(errorLog): \(Errno.last.description)") }
        defer { close(logFD) }
        let setup = PsqlSession.Setup(psql: plan.psql, osUser: plan.osUser, environment: plan.environment, logFD: logFD)

        var splitter = DumpSplitter(names: plan.names)
        var gate = plan.roles
        /// Dumped database -> how its part logs in (its owner's login).
        var logins: [String: PsqlLogin] = [:]
        var context = DumpContext.cluster
        var session: PsqlSession?
        var parts: [Part] = []
        var problems: [String] = []
        var lineNo = 0
        var total: Int64 = 0

        func endPart() {
            guard let s = session else { return }
            let st = s.finish()
            parts.append(Part(context: s.context, session: s, logEnd: Int64(lseek(logFD, 0, SEEK_END)), status: st))
            session = nil
        }
        func current() throws -> PsqlSession {
            if let s = session { return s }
            let db: String
            var partSetup = setup
            switch context {
            case .cluster: db = plan.maintenanceDatabase
            case .database(let d):
                db = plan.names[d]!
                partSetup.osUser = logins[d]!.osUser
                partSetup.environment = logins[d]!.environment
            }
            let s = try PsqlSession(setup: partSetup, database: db, context: context)
            session = s
            return s
        }
        func handle(_ line: UnsafeBufferPointer<UInt8>) throws {
            lineNo += 1
            let action = try splitter.next(line, number: lineNo)
            if context == .cluster {
                // The privileged part: only what the gate lets through, as our own text.
                let text: String
                switch action {
                case .pass: text = String(decoding: line, as: UTF8.self)
                case .rewrite(let t): text = t
                case .skip, .connect: text = ""
                }
                if !text.isEmpty {
                    for statement in try gate.feed(text, number: lineNo) {
                        let s = try current()
                        s.sync(dumpLine: lineNo)
                        try s.send(statement)
                    }
                    return
                }
            }
            switch action {
            case .pass:
                // No psql for blank lines and comments between parts.
                if session == nil && (line.isEmpty || (line.count >= 2 && line[0] == 0x2D && line[1] == 0x2D)) { return }
                let s = try current()
                s.sync(dumpLine: lineNo)
                try s.send(line)
            case .rewrite(let text):
                let s = try current()
                s.sync(dumpLine: lineNo)
                try s.send(text)
            case .skip:
                return
            case .connect(let ctx):
                if context == .cluster, case .database = ctx {
                    let owners = plan.names.keys.compactMap { splitter.spec(for: $0)?.owner }
                    for statement in try gate.fix(owners: owners) {
                        let s = try current()
                        try s.send(statement)
                    }
                }
                endPart()
                try Interruption.check()
                if case .database(let db) = ctx, !splitter.created.contains(db) {
                    guard let spec = splitter.spec(for: db), let copy = plan.names[db] else {
                        throw BackupError.data("dump.sql line \(lineNo): no CREATE DATABASE for \(db)")
                    }
                    guard let owner = spec.owner else {
                        throw BackupError.data("dump.sql line \(lineNo): it does not say which role owns the database \(db) (no ALTER DATABASE ... OWNER TO): restore loads each database as its owner")
                    }
                    logins[db] = try plan.ownerLogin(db, owner)
                    try plan.create(spec, copy)
                    splitter.markCreated(db)
                }
                context = ctx
            }
        }

        do {
            let found = try forEachLine(archive: archive, bytes: &total, handle)
            guard found else { throw BackupError.data("\(archive) has no dump.sql") }
            if context == .cluster {
                for statement in try gate.fix(owners: []) { try current().send(statement) }
            }
            endPart()
            for db in plan.names.keys.sorted() where !splitter.created.contains(db) {
                problems.append("dump.sql holds no database \(db)")
            }
        } catch is PsqlSession.Closed {
            endPart()
            problems.append("psql stopped reading dump.sql at line \(lineNo)")
        } catch {
            if let s = session { _ = s.finish() }
            throw error
        }

        // psql's messages, part by part (each part's own rules), the first 8 MiB of each.
        var outcome = Outcome(status: 0, errors: problems, expected: [], refused: [], bytes: total, notes: gate.notes)
        var start = Int64(0)
        let reader = open(errorLog, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        defer { if reader >= 0 { close(reader) } }
        for p in parts {
            start = p.session.logStart
            let n = Int(min(p.logEnd - start, 8 << 20))
            var bytes = [UInt8](repeating: 0, count: max(n, 0))
            if n > 0 && reader >= 0 { _ = bytes.withUnsafeMutableBytes { pread(reader, $0.baseAddress, n, off_t(start)) } }
            let sorted = PsqlMessages.classify(Substring(String(decoding: bytes, as: UTF8.self)), context: p.context)
            let describe = { (l: PsqlMessages.Line) -> String in
                (l.psqlLine.map { "dump.sql line \(p.session.dumpLine($0)) (\(p.context)): " } ?? "(\(p.context)): ") + l.text
            }
            outcome.errors += sorted.errors.map(describe)
            outcome.expected += sorted.expected.map(describe)
            outcome.refused += sorted.refused.map(describe)
            if p.status != 0 && outcome.status == 0 { outcome.status = p.status }
        }
        return outcome
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
