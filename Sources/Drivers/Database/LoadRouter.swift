import Foundation

/// Spreads one database's part of dump.sql over parallel psql sessions, as `pg_restore -j` does
/// with a directory dump, decided line by line from pg_dump's own layout:
/// - pre-data (everything before the first data entry) runs in one session;
/// - data: each `COPY ... FROM stdin` block goes, in sub-blocks of `copyChunk` bytes, to the
///   session with the least input waiting (the loader's choice), everything else (sequence values,
///   large objects) to session 0, all at once;
/// - post-data: runs of INDEX and CONSTRAINT entries are shared out over the sessions, each entry
///   whole, to the session with the least work so far (the bytes of its table's data); any other
///   entry (foreign keys, triggers, grants ...) waits for everything before it and runs alone.
/// A phase ends only when every session of the phase before has finished (`open`: the loader ends
/// them and starts the new ones), so nothing runs before what it depends on. New sessions start
/// with the part's session settings (`preamble`). With `jobs` 1 every line goes to one session, in
/// order, as `psql -f` would run it.
///
/// Phases are told by pg_dump's entry headers (`--` then `-- Name: x; Type: INDEX; Schema: ...`),
/// outside COPY data. A dump that imitates them inside a function body can only split a statement,
/// which fails the load (the copy is dropped, nothing live changes): it never runs anything that
/// the one-session load would not.
package struct LoadRouter {
    package enum Phase: Equatable { case preData, data, postParallel, postSerial }

    /// Where a line goes.
    package enum Target: Equatable {
        case lane(Int)
        /// Every open session (a session setting pg_dump changes between entries).
        case all
        /// A COPY header: the loader picks the session, and sends the header again at each sub-block.
        case copyStart(table: String)
        /// A COPY data row, to the current sub-block's session.
        case copyRow
        /// The `\.` ending a COPY block.
        case copyEnd
    }

    package struct Decision: Equatable {
        /// Before the line: end every open session (wait for it), then open this many.
        package var open: Int?
        package var target: Target

        package init(open: Int?, target: Target) {
            self.open = open
            self.target = target
        }
    }

    package let jobs: Int
    private(set) package var phase: Phase = .preData
    /// The part's session settings so far (pg_dump's opening SETs, then default_tablespace and
    /// default_table_access_method as it changes them), with their dump.sql line numbers.
    private(set) package var preamble: [(line: String, number: Int)] = []
    /// Bytes of COPY data per table (as the COPY header names it): the cost of its indexes.
    private(set) package var tableBytes: [String: Int64] = [:]
    /// Work given to each session of a post-data parallel run.
    private(set) package var laneCost: [Int64] = []
    private var entryLane = 0
    private var entryPending = false
    private var previousWasDashes = false
    private var seenEntry = false
    private var copyTable: String?
    private var copyBytes: Int64 = 0

    package init(jobs: Int) { self.jobs = max(1, jobs) }

    static package let dataTypes: Set<String> = ["TABLE DATA", "SEQUENCE SET", "BLOBS", "LARGE OBJECTS", "BLOB DATA"]
    static package let parallelTypes: Set<String> = ["INDEX", "CONSTRAINT"]

    /// The entry type of a pg_dump header line (`-- Name: t; Type: TABLE; Schema: public; Owner: maas`,
    /// `-- Data for Name: t; Type: TABLE DATA; ...`), else nil.
    static package func entryType(_ line: Substring) -> String? {
        guard line.hasPrefix("-- Name: ") || line.hasPrefix("-- Data for Name: "),
              let t = line.range(of: "; Type: ") else { return nil }
        let rest = line[t.upperBound...]
        guard let end = rest.range(of: "; Schema: ") else { return nil }
        return String(rest[..<end.lowerBound])
    }

    /// The table a post-data statement's first line works on: `ALTER TABLE [ONLY] t`,
    /// `CREATE [UNIQUE] INDEX i ON [ONLY] t USING ...`.
    static package func statementTable(_ line: Substring) -> String? {
        for p in ["ALTER TABLE ONLY ", "ALTER TABLE "] where line.hasPrefix(p) {
            return word(line.dropFirst(p.count))
        }
        guard line.hasPrefix("CREATE INDEX ") || line.hasPrefix("CREATE UNIQUE INDEX "),
              let on = line.range(of: " ON ") else { return nil }
        var rest = line[on.upperBound...]
        if rest.hasPrefix("ONLY ") { rest = rest.dropFirst(5) }
        return word(rest)
    }

    /// The COPY header's table (`COPY public.t (a, b) FROM stdin;`).
    static package func copyTable(_ line: Substring) -> String {
        word(line.dropFirst(5)) ?? ""
    }

    private static func word(_ s: Substring) -> String? {
        let w = s.prefix { $0 != " " && $0 != ";" }
        return w.isEmpty ? nil : String(w)
    }

    private static func isSetting(_ line: Substring) -> Bool {
        line.hasPrefix("SET default_tablespace = ") || line.hasPrefix("SET default_table_access_method = ")
    }

    /// Decides where line `number` goes. `wasInCopy` / `isInCopy`: the splitter's COPY state before
    /// and after the line. COPY data is not decoded.
    mutating package func route(_ line: UnsafeBufferPointer<UInt8>, number: Int, wasInCopy: Bool, isInCopy: Bool) -> Decision {
        if jobs == 1 { return Decision(open: nil, target: .lane(0)) }
        if wasInCopy { return copyLine(bytes: line.count, ends: !isInCopy) }
        return route(Substring(String(decoding: line, as: UTF8.self)), number: number, wasInCopy: false, isInCopy: isInCopy)
    }

    /// A line of COPY data, or the `\.` after it.
    private mutating func copyLine(bytes: Int, ends: Bool) -> Decision {
        previousWasDashes = false
        if ends {
            if let t = copyTable { tableBytes[t, default: 0] += copyBytes }
            copyTable = nil
            copyBytes = 0
            return Decision(open: nil, target: phase == .data ? .copyEnd : .lane(entryLane))
        }
        copyBytes += Int64(bytes + 1)
        return Decision(open: nil, target: phase == .data ? .copyRow : .lane(entryLane))
    }

    mutating package func route(_ line: Substring, number: Int, wasInCopy: Bool, isInCopy: Bool) -> Decision {
        if jobs == 1 { return Decision(open: nil, target: .lane(0)) }
        if wasInCopy { return copyLine(bytes: line.utf8.count, ends: !isInCopy) }
        let dashes = previousWasDashes
        previousWasDashes = line == "--"
        if isInCopy {
            let table = LoadRouter.copyTable(line)
            copyTable = table
            return Decision(open: nil, target: phase == .data ? .copyStart(table: table) : .lane(entryLane))
        }
        if dashes, let type = LoadRouter.entryType(line) { return header(type) }
        if !seenEntry, line.hasPrefix("SET ") || line.hasPrefix("SELECT pg_catalog.set_config(") {
            preamble.append((String(line), number))
        } else if LoadRouter.isSetting(line) {
            preamble.append((String(line), number))
            if phase != .preData && phase != .postSerial { return Decision(open: nil, target: .all) }
        }
        if phase == .postParallel && entryPending && !line.isEmpty && !line.hasPrefix("--") {
            entryPending = false
            let cost = LoadRouter.statementTable(line).flatMap { tableBytes[$0] } ?? 0
            entryLane = laneCost.indices.min { laneCost[$0] < laneCost[$1] } ?? 0
            laneCost[entryLane] += cost + Int64(line.utf8.count)
        }
        return Decision(open: nil, target: .lane(phase == .postParallel ? entryLane : 0))
    }

    /// An entry header: the phase it belongs to, and the sessions that phase needs.
    private mutating func header(_ type: String) -> Decision {
        seenEntry = true
        let next: Phase
        if LoadRouter.dataTypes.contains(type) {
            next = phase == .preData ? .data : phase
        } else if phase == .preData {
            next = .preData
        } else {
            next = LoadRouter.parallelTypes.contains(type) ? .postParallel : .postSerial
        }
        var open: Int?
        if next != phase {
            open = (next == .postSerial) ? 1 : jobs
            laneCost = Array(repeating: 0, count: jobs)
            entryLane = 0
        }
        phase = next
        entryPending = next == .postParallel
        return Decision(open: open, target: .lane(next == .postParallel ? entryLane : 0))
    }
}
