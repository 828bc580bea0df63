import Foundation
import MSBKit
#if canImport(Glibc)
import Glibc
#endif

/// One load of dump.sql (DumpLoader.loadNow), line by line: DumpSplitter cuts it into parts at each
/// `\connect`; the roles part goes through the gate to one session on the maintenance database;
/// each database's part, on its new copy (made at its first `\connect`, logged in as its owner),
/// is spread over `plan.jobs` sessions by LoadRouter and LoadLanes.
final class DumpLoad {
    private let plan: DumpLoader.Plan
    private let setup: PsqlSession.Setup
    private var splitter: DumpSplitter
    private var gate: RolesGate
    /// Dumped database -> how its part logs in (its owner's login).
    private var logins: [String: PsqlLogin] = [:]
    private var context = DumpContext.cluster
    private var router: LoadRouter
    private var lanes: LoadLanes!
    private var lineNo = 0
    private let archive: String

    init(archive: String, plan: DumpLoader.Plan, setup: PsqlSession.Setup) {
        self.archive = archive
        self.plan = plan
        self.setup = setup
        splitter = DumpSplitter(names: plan.names)
        gate = plan.roles
        router = LoadRouter(jobs: 1)
        // Test hook (docs/development.md): MSB_TEST_LOAD_CHUNK=<bytes> cuts COPY blocks that small.
        let chunk = FaultPoint.environment["MSB_TEST_LOAD_CHUNK"].flatMap(Int.init).map { max($0, 1024) } ?? 1 << 20
        lanes = LoadLanes(copyChunk: chunk) { [unowned self] in try self.openSession() }
    }

    private func openSession() throws -> PsqlSession {
        var partSetup = setup
        let db: String
        switch context {
        case .cluster: db = plan.maintenanceDatabase
        case .database(let d):
            db = plan.names[d]!
            partSetup.osUser = logins[d]!.osUser
            partSetup.environment = logins[d]!.environment
        }
        return try PsqlSession(setup: partSetup, database: db, context: context)
    }

    /// Feeds every line `read` gives to the sessions; the problems found on the way.
    func run(_ read: ((UnsafeBufferPointer<UInt8>) throws -> Void) throws -> Bool) throws -> [String] {
        var problems: [String] = []
        do {
            guard try read(handle) else { throw BackupError.data("\(archive) has no dump.sql") }
            if context == .cluster {
                for statement in try gate.fix(owners: []) { try cluster(statement) }
            }
            try lanes.finish()
            for db in plan.names.keys.sorted() where !splitter.created.contains(db) {
                problems.append("dump.sql holds no database \(db)")
            }
        } catch is PsqlSession.Closed {
            lanes.closeAll()
            problems.append("psql stopped reading dump.sql at line \(lineNo)")
        } catch {
            lanes.closeAll()
            throw error
        }
        return problems
    }

    private func handle(_ line: UnsafeBufferPointer<UInt8>) throws {
        lineNo += 1
        let wasInCopy = splitter.inCopy
        let action = try splitter.next(line, number: lineNo)
        if case .connect(let ctx) = action { return try connect(ctx) }
        if action == .skip { return }
        if context == .cluster {
            // The privileged part: only what the gate lets through, as our own text.
            let text: String
            if case .rewrite(let t) = action { text = t } else { text = String(decoding: line, as: UTF8.self) }
            guard !text.isEmpty else { return }
            for statement in try gate.feed(text, number: lineNo) { try cluster(statement) }
            return
        }
        if case .rewrite(let text) = action {
            var bytes = Array(text.utf8)
            return try bytes.withUnsafeMutableBufferPointer { try database(UnsafeBufferPointer($0), wasInCopy: wasInCopy) }
        }
        try database(line, wasInCopy: wasInCopy)
    }

    /// A statement of the roles part, as the gate wrote it.
    private func cluster(_ statement: String) throws {
        if lanes.isEmpty { try lanes.start(1, preamble: []) }
        var bytes = Array(statement.utf8)
        try bytes.withUnsafeMutableBufferPointer { try lanes.send(UnsafeBufferPointer($0), number: lineNo, to: 0) }
    }

    /// A line of a database's part, where the router sends it.
    private func database(_ line: UnsafeBufferPointer<UInt8>, wasInCopy: Bool) throws {
        let d = router.route(line, number: lineNo, wasInCopy: wasInCopy, isInCopy: splitter.inCopy)
        if let n = d.open { try lanes.start(n, preamble: router.preamble) }
        if lanes.isEmpty {
            // No psql for blank lines and comments between parts.
            if line.isEmpty || (line.count >= 2 && line[0] == 0x2D && line[1] == 0x2D) { return }
            try lanes.start(1, preamble: [])
        }
        switch d.target {
        case .lane(let i): try lanes.send(line, number: lineNo, to: i)
        case .all: try lanes.sendAll(line, number: lineNo)
        case .copyStart: try lanes.copyStart(line, number: lineNo)
        case .copyRow: try lanes.copyRow(line, number: lineNo)
        case .copyEnd: try lanes.copyEnd(line, number: lineNo)
        }
    }

    /// `\connect`: the part before it ends (its sessions run to their end); a database's copy is
    /// made on its first `\connect`.
    private func connect(_ ctx: DumpContext) throws {
        if context == .cluster, case .database = ctx {
            let owners = plan.names.keys.compactMap { splitter.spec(for: $0)?.owner }
            for statement in try gate.fix(owners: owners) { try cluster(statement) }
        }
        try lanes.finish()
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
        router = LoadRouter(jobs: ctx == .cluster ? 1 : plan.jobs)
    }

    /// psql's messages, session by session (each part's own rules), the first 8 MiB of each.
    func outcome(problems: [String], bytes: Int64, errorLog: String) throws -> DumpLoader.Outcome {
        var outcome = DumpLoader.Outcome(status: 0, errors: problems, expected: [], refused: [], bytes: bytes, notes: gate.notes)
        let reader = open(errorLog, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        defer { if reader >= 0 { close(reader) } }
        for (s, status) in zip(lanes.ended, lanes.statuses) {
            let n = Int(min(s.logEnd - s.logStart, 8 << 20))
            var text = [UInt8](repeating: 0, count: max(n, 0))
            if n > 0 && reader >= 0 { _ = text.withUnsafeMutableBytes { pread(reader, $0.baseAddress, n, off_t(s.logStart)) } }
            let sorted = PsqlMessages.classify(Substring(String(decoding: text, as: UTF8.self)), context: s.context)
            let describe = { (l: PsqlMessages.Line) -> String in
                (l.psqlLine.map { "dump.sql line \(s.dumpLine($0)) (\(s.context)): " } ?? "(\(s.context)): ") + l.text
            }
            outcome.errors += sorted.errors.map(describe)
            outcome.expected += sorted.expected.map(describe)
            outcome.refused += sorted.refused.map(describe)
            if status != 0 && outcome.status == 0 { outcome.status = status }
        }
        return outcome
    }
}
