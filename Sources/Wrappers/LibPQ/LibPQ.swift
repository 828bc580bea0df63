import CLibPQ
#if canImport(Glibc)
import Glibc
#endif

/// An error from libpq: the function and libpq's own message (PQerrorMessage / PQresultErrorMessage).
public struct PQError: Error, Sendable, CustomStringConvertible {
    public var function: String
    public var message: String
    /// SQLSTATE when the server sent one.
    public var sqlState: String?
    public var description: String {
        "\(function): \(message)" + (sqlState.map { " [SQLSTATE \($0)]" } ?? "")
    }
}

/// One libpq connection (PGconn). Not thread-safe: use it from one task at a time.
/// Each method wraps one libpq call.
public final class PQConnection {
    private var conn: OpaquePointer?

    /// PQconnectdbParams. Keys are libpq connection keywords (host, port, dbname, user,
    /// passfile, application_name, connect_timeout...). A password should come from a passfile or
    /// PGPASSWORD in the environment, never from a command line.
    public init(parameters: [(String, String)]) throws {
        let keys = parameters.map { strdup($0.0) } + [nil]
        let values = parameters.map { strdup($0.1) } + [nil]
        defer {
            keys.forEach { free($0) }
            values.forEach { free($0) }
        }
        let c = keys.withUnsafeBufferPointer { k in
            values.withUnsafeBufferPointer { v in
                k.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: k.count) { kp in
                    v.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: v.count) { vp in
                        PQconnectdbParams(kp, vp, 0)
                    }
                }
            }
        }
        guard let c else { throw PQError(function: "PQconnectdbParams", message: "out of memory") }
        if PQstatus(c) != CONNECTION_OK {
            let message = PQConnection.trim(String(cString: PQerrorMessage(c)))
            PQfinish(c)
            throw PQError(function: "PQconnectdbParams", message: message)
        }
        // PQsetNoticeProcessor: the server's NOTICE and WARNING messages (e.g. "there is no
        // transaction in progress") would go to stderr unasked, between the tool's own lines.
        _ = PQsetNoticeProcessor(c, { _, _ in }, nil)
        conn = c
    }

    deinit { finish() }

    /// PQfinish. Safe to call more than once.
    public func finish() {
        if let c = conn { PQfinish(c) }
        conn = nil
    }

    public var isOpen: Bool { conn != nil && PQstatus(conn) == CONNECTION_OK }

    /// PQserverVersion: e.g. 150018 for 15.18.
    public func serverVersion() -> Int { conn.map { Int(PQserverVersion($0)) } ?? 0 }

    /// PQbackendPID.
    public func backendPID() -> Int32 { conn.map { PQbackendPID($0) } ?? 0 }

    /// PQexec, returning all rows as text (NULL as nil). Throws on any status other than
    /// PGRES_COMMAND_OK / PGRES_TUPLES_OK.
    @discardableResult
    public func exec(_ sql: String) throws -> PQResult {
        guard let c = conn else { throw PQError(function: "PQexec", message: "connection is closed") }
        guard let r = PQexec(c, sql) else {
            throw PQError(function: "PQexec", message: PQConnection.trim(String(cString: PQerrorMessage(c))))
        }
        return try PQResult(r, function: "PQexec")
    }

    /// PQexecParams with text parameters.
    @discardableResult
    public func exec(_ sql: String, _ params: [String?]) throws -> PQResult {
        guard let c = conn else { throw PQError(function: "PQexecParams", message: "connection is closed") }
        let dup = params.map { $0.map { strdup($0) } ?? nil }
        defer { dup.forEach { free($0) } }
        let r = dup.withUnsafeBufferPointer { buf in
            buf.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: max(buf.count, 1)) { p in
                PQexecParams(c, sql, Int32(params.count), nil, p, nil, nil, 0)
            }
        }
        guard let r else {
            throw PQError(function: "PQexecParams", message: PQConnection.trim(String(cString: PQerrorMessage(c))))
        }
        return try PQResult(r, function: "PQexecParams")
    }

    /// PQescapeIdentifier: quote an identifier for SQL text.
    public func escapeIdentifier(_ s: String) throws -> String {
        guard let c = conn else { throw PQError(function: "PQescapeIdentifier", message: "connection is closed") }
        guard let p = PQescapeIdentifier(c, s, s.utf8.count) else {
            throw PQError(function: "PQescapeIdentifier", message: PQConnection.trim(String(cString: PQerrorMessage(c))))
        }
        defer { PQfreemem(p) }
        return String(cString: p)
    }

    static func trim(_ s: String) -> String {
        var t = Substring(s)
        while let l = t.last, l == "\n" || l == " " { t = t.dropLast() }
        return t.replacingOccurrences(of: "\n", with: "; ")
    }
}

private extension Substring {
    func replacingOccurrences(of a: Character, with b: String) -> String {
        var out = ""
        for ch in self { if ch == a { out += b } else { out.append(ch) } }
        return out
    }
}

/// A result copied out of a PGresult (which is cleared at once).
public struct PQResult: Sendable {
    public var columns: [String]
    public var rows: [[String?]]
    public var commandTuples: String

    init(_ r: OpaquePointer, function: String) throws {
        defer { PQclear(r) }
        let status = PQresultStatus(r)
        guard status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK else {
            let msg = PQConnection.trim(String(cString: PQresultErrorMessage(r)))
            let state = PQresultErrorField(r, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
            throw PQError(function: function, message: msg.isEmpty ? String(cString: PQresStatus(status)) : msg, sqlState: state)
        }
        let nf = Int(PQnfields(r)), nt = Int(PQntuples(r))
        columns = (0..<nf).map { String(cString: PQfname(r, Int32($0))) }
        var rows: [[String?]] = []
        rows.reserveCapacity(nt)
        for i in 0..<nt {
            rows.append((0..<nf).map { j in
                PQgetisnull(r, Int32(i), Int32(j)) != 0 ? nil : String(cString: PQgetvalue(r, Int32(i), Int32(j)))
            })
        }
        self.rows = rows
        commandTuples = String(cString: PQcmdTuples(r))
    }

    /// The first column of the first row.
    public var scalar: String? { rows.first?.first ?? nil }
}

/// PQlibVersion.
public func pqLibraryVersion() -> Int { Int(PQlibVersion()) }
