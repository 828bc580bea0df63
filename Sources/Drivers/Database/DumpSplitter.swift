import Foundation
import MSBKit

/// Where a part of dump.sql runs.
package enum DumpContext: Equatable, Sendable, CustomStringConvertible {
    /// The roles and tablespaces (after the dump's `\connect template1`): run on the maintenance database.
    case cluster
    /// A dumped database: run on its `_restoring_` copy.
    case database(String)

    package var description: String {
        switch self {
        case .cluster: return "the roles"
        case .database(let d): return "database \(d)"
        }
    }
}

/// What a dump's `CREATE DATABASE` (and the `ALTER DATABASE ... OWNER TO` after it) asked for.
package struct CreateDatabaseSpec: Equatable, Sendable {
    package struct Option: Equatable, Sendable {
        package var key: String
        package var value: String
        /// A string literal ('C.UTF-8'), else a word (libc, template0, 12).
        package var quoted: Bool
    }
    package var name: String
    package var options: [Option] = []
    package var owner: String?

    /// Options a restore carries over; any other one in the dump is refused.
    static package let known: Set<String> = ["TEMPLATE", "ENCODING", "LOCALE_PROVIDER", "LOCALE", "LC_COLLATE", "LC_CTYPE", "ICU_LOCALE",
                                     "ICU_RULES", "BUILTIN_LOCALE", "COLLATION_VERSION", "TABLESPACE", "STRATEGY", "OID",
                                     "IS_TEMPLATE", "ALLOW_CONNECTIONS", "CONNECTION_LIMIT"]
    /// Of those, the ones that shape the new database (the others are properties pg_dump sets later, or OIDs).
    static package let carried: Set<String> = ["TEMPLATE", "ENCODING", "LOCALE_PROVIDER", "LOCALE", "LC_COLLATE", "LC_CTYPE", "ICU_LOCALE",
                                       "ICU_RULES", "BUILTIN_LOCALE", "COLLATION_VERSION", "TABLESPACE"]

    /// Our own CREATE DATABASE for `newName`, every value re-quoted by us.
    package func statement(newName: String) -> String {
        var s = "CREATE DATABASE \(DumpSplitter.quoteIdent(newName))"
        var with: [String] = []
        for o in options where CreateDatabaseSpec.carried.contains(o.key) {
            with.append("\(o.key) = " + (o.quoted ? "'" + o.value.replacingOccurrences(of: "'", with: "''") + "'" : o.value))
        }
        if !options.contains(where: { $0.key == "TEMPLATE" }) { with.insert("TEMPLATE = template0", at: 0) }
        if let owner { with.append("OWNER = \(DumpSplitter.quoteIdent(owner))") }
        if !with.isEmpty { s += " WITH " + with.joined(separator: " ") }
        return s
    }
}

/// Reads dump.sql line by line (as pg_dumpall --clean and our backup write it) and decides for each
/// line where it goes. Lines at the start of a line outside COPY ... FROM stdin data are looked at:
/// - `\connect DB` ends a part: the next one runs on DB's `_restoring_` copy (template1: the roles);
/// - the dump's own `\restrict KEY` / `\unrestrict KEY` are dropped (psql gets our key instead), and
///   `\encoding` (each part sets client_encoding itself);
/// - `DROP DATABASE` is never run; `CREATE DATABASE` and its `ALTER DATABASE ... OWNER TO` are taken
///   over (we create the copy under its new name);
/// - database-level lines that name a dumped database (`ALTER DATABASE d SET`, `COMMENT ON DATABASE d`,
///   `GRANT ... ON DATABASE d`, `ALTER ROLE r IN DATABASE d`) are pointed at its copy.
/// Everything else goes to psql as it is; psql, restricted by our key, refuses any meta-command
/// (`\!`, `\o |cmd`, a `\` in the middle of a line), so the splitter needs no SQL lexer for safety.
package struct DumpSplitter {
    package enum Action: Equatable {
        case pass
        case rewrite(String)
        case skip
        /// The part ends; the next lines go to `context`.
        case connect(DumpContext)
    }

    /// Dumped database -> the name it is loaded under.
    package let names: [String: String]
    private(set) package var context: DumpContext = .cluster
    private(set) package var inCopy = false
    /// CREATE DATABASE seen, database not created yet.
    private(set) package var pending: [String: CreateDatabaseSpec] = [:]
    /// Databases whose copy exists (created on their first `\connect`).
    private(set) package var created: Set<String> = []

    /// The copy of `db` exists now: its lines are pointed at it from here on.
    mutating package func markCreated(_ db: String) {
        created.insert(db)
        pending[db] = nil
    }

    package init(names: [String: String]) { self.names = names }

    static package let copyEnd: [UInt8] = Array("\\.".utf8)

    mutating package func next(_ line: UnsafeBufferPointer<UInt8>, number: Int) throws -> Action {
        if inCopy {
            if line.count == 2 && line[0] == 0x5C && line[1] == 0x2E { inCopy = false }
            return .pass
        }
        guard let first = line.first else { return .pass }
        // Only lines that can matter are decoded.
        switch first {
        case UInt8(ascii: "\\"), UInt8(ascii: "C"), UInt8(ascii: "D"), UInt8(ascii: "A"), UInt8(ascii: "G"),
             UInt8(ascii: "R"), UInt8(ascii: "S"):
            return try look(String(decoding: line, as: UTF8.self), number: number)
        default:
            return .pass
        }
    }

    /// The same for a String (the unit tests).
    mutating package func next(_ line: String, number: Int) throws -> Action {
        var bytes = Array(line.utf8)
        return try bytes.withUnsafeMutableBufferPointer { try next(UnsafeBufferPointer($0), number: number) }
    }

    /// What the next `\connect` must create first, if anything.
    package func spec(for db: String) -> CreateDatabaseSpec? { pending[db] }

    private mutating func look(_ line: String, number: Int) throws -> Action {
        let where_ = "dump.sql line \(number)"
        if line.hasPrefix("\\") {
            let word = line.prefix { !$0.isWhitespace }
            switch word {
            case "\\restrict", "\\unrestrict":
                return .skip
            case "\\encoding":
                // pg_dump sets psql's client encoding before a \connect to a name that needs quoting;
                // each part starts with its own SET client_encoding, so it is not needed.
                return .skip
            case "\\connect", "\\c":
                let arg = line.dropFirst(word.count).trimmingCharacters(in: .whitespaces)
                guard let db = DumpSplitter.connectTarget(arg) else {
                    throw BackupError.data("\(where_): cannot read the database of `\(line.prefix(200))`")
                }
                if db == "template1" || (db == "postgres" && names["postgres"] == nil) {
                    context = .cluster
                    return .connect(.cluster)
                }
                guard names[db] != nil else {
                    throw BackupError.data("\(where_): dump.sql connects to \(db), a database the manifest does not list")
                }
                guard created.contains(db) || pending[db] != nil else {
                    throw BackupError.data("\(where_): dump.sql connects to \(db) before it creates it")
                }
                context = .database(db)
                return .connect(.database(db))
            default:
                return .pass  // psql refuses it (restricted): the load fails with its message
            }
        }
        if line.hasPrefix("COPY ") && line.hasSuffix(" FROM stdin;") {
            inCopy = true
            return .pass
        }
        if line.hasPrefix("DROP DATABASE ") { return .skip }
        if line.hasPrefix("CREATE DATABASE ") {
            let spec = try DumpSplitter.parseCreate(line, where: where_)
            guard names[spec.name] != nil else {
                throw BackupError.data("\(where_): dump.sql creates the database \(spec.name), which the manifest does not list")
            }
            guard !created.contains(spec.name) && pending[spec.name] == nil else {
                throw BackupError.data("\(where_): dump.sql creates the database \(spec.name) twice")
            }
            pending[spec.name] = spec
            return .skip
        }
        if line.hasPrefix("ALTER DATABASE "), line.hasSuffix(";"),
           let (db, end) = DumpSplitter.parseIdent(line, from: line.index(line.startIndex, offsetBy: 15)), pending[db] != nil {
            let rest = line[end...]
            if rest.hasPrefix(" OWNER TO "), let (owner, e2) = DumpSplitter.parseIdent(line, from: line.index(end, offsetBy: 10)),
               line[e2...] == ";" {
                pending[db]?.owner = owner
                return .skip
            }
            throw BackupError.data("\(where_): dump.sql changes the database \(db) before it connects to it")
        }
        for prefix in ["ALTER DATABASE ", "COMMENT ON DATABASE ", "GRANT ", "REVOKE ", "ALTER ROLE ", "SECURITY LABEL "] where line.hasPrefix(prefix) {
            return try pointAtCopy(line, where: where_)
        }
        return .pass
    }

    /// `... DATABASE d ...` with d a dumped database: d replaced by its copy's name.
    private func pointAtCopy(_ line: String, where where_: String) throws -> Action {
        var search = line.startIndex
        while let r = line.range(of: "DATABASE ", range: search..<line.endIndex) {
            search = r.upperBound
            guard r.lowerBound == line.startIndex || line[line.index(before: r.lowerBound)] == " " else { continue }
            guard let (db, end) = DumpSplitter.parseIdent(line, from: r.upperBound),
                  end == line.endIndex || line[end] == " " || line[end] == ";" else { continue }
            guard let copy = names[db] else { return .pass }
            guard created.contains(db) else {
                throw BackupError.data("\(where_): dump.sql changes the database \(db) before it connects to it")
            }
            return .rewrite(String(line[..<r.upperBound]) + DumpSplitter.quoteIdent(copy) + String(line[end...]))
        }
        return .pass
    }

    // MARK: - Parsing pg_dump's own output

    /// An identifier as pg_dump's fmtId writes it (bare, or in double quotes with "" for a quote)
    /// at `i`; the name and the index after it.
    static package func parseIdent(_ s: String, from i: String.Index) -> (String, String.Index)? {
        guard i < s.endIndex else { return nil }
        if s[i] == "\"" {
            var out = ""
            var j = s.index(after: i)
            while j < s.endIndex {
                if s[j] == "\"" {
                    let n = s.index(after: j)
                    if n < s.endIndex && s[n] == "\"" { out.append("\""); j = s.index(after: n); continue }
                    return out.isEmpty ? nil : (out, n)
                }
                out.append(s[j])
                j = s.index(after: j)
            }
            return nil
        }
        var j = i
        while j < s.endIndex, s[j].isLetter || s[j].isNumber || s[j] == "_" || s[j] == "$" { j = s.index(after: j) }
        return j == i ? nil : (String(s[i..<j]), j)
    }

    static package func quoteIdent(_ s: String) -> String { "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }

    /// The database of a `\connect` argument: `name`, `"name"`, or pg_dump's
    /// `-reuse-previous=on "dbname='...'"` for names that need quoting.
    static package func connectTarget(_ arg: String) -> String? {
        var a = Substring(arg)
        if a.hasPrefix("-reuse-previous=on ") { a = a.dropFirst("-reuse-previous=on ".count) }
        var token: String
        if a.hasPrefix("\"") {
            guard a.count >= 2, a.hasSuffix("\"") else { return nil }
            token = String(a.dropFirst().dropLast()).replacingOccurrences(of: "\"\"", with: "\"")
        } else {
            guard !a.isEmpty, !a.contains(where: { $0.isWhitespace }) else { return nil }
            token = String(a)
        }
        guard token.hasPrefix("dbname=") else { return token.contains("=") ? nil : token }
        // A conninfo string: dbname='...' with \ escapes inside the quotes.
        let v = token.dropFirst("dbname=".count)
        guard v.hasPrefix("'"), v.hasSuffix("'"), v.count >= 2 else { return v.contains(" ") ? nil : String(v) }
        var out = "", escaped = false
        for c in v.dropFirst().dropLast() {
            if escaped { out.append(c); escaped = false } else if c == "\\" { escaped = true } else { out.append(c) }
        }
        return out
    }

    /// `CREATE DATABASE name [WITH] KEY = value ...;` with values a 'literal', a word or a number.
    static package func parseCreate(_ line: String, where where_: String) throws -> CreateDatabaseSpec {
        let bad = { (why: String) in BackupError.data("\(where_): cannot read its CREATE DATABASE (\(why))") }
        guard let (name, afterName) = parseIdent(line, from: line.index(line.startIndex, offsetBy: 16)) else { throw bad("no name") }
        var spec = CreateDatabaseSpec(name: name)
        var rest = line[afterName...].trimmingCharacters(in: .whitespaces)
        guard rest.hasSuffix(";") else { throw bad("no ; at the end of the line") }
        rest.removeLast()
        var s = Substring(rest).drop { $0 == " " }
        if s.hasPrefix("WITH ") { s = s.dropFirst(5) }
        while true {
            s = s.drop { $0 == " " }
            if s.isEmpty { break }
            var key = String(s.prefix { $0.isLetter || $0 == "_" }).uppercased()
            s = s.dropFirst(key.count).drop { $0 == " " }
            if key == "CONNECTION", s.hasPrefix("LIMIT") { key = "CONNECTION_LIMIT"; s = s.dropFirst(5).drop { $0 == " " } }
            guard !key.isEmpty, CreateDatabaseSpec.known.contains(key) else { throw bad("unknown option \(key.isEmpty ? String(s.prefix(20)) : key)") }
            if s.hasPrefix("=") { s = s.dropFirst().drop { $0 == " " } }
            if s.hasPrefix("'") {
                var value = "", j = s.index(after: s.startIndex), closed = false
                while j < s.endIndex {
                    if s[j] == "'" {
                        let n = s.index(after: j)
                        if n < s.endIndex && s[n] == "'" { value.append("'"); j = s.index(after: n); continue }
                        j = n; closed = true; break
                    }
                    value.append(s[j]); j = s.index(after: j)
                }
                guard closed else { throw bad("an unterminated string") }
                guard value.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "_.@-+= ".contains($0)) }) else {
                    throw bad("\(key) holds characters a locale or encoding name does not have")
                }
                spec.options.append(.init(key: key, value: value, quoted: true))
                s = s[j...]
            } else {
                let word = String(s.prefix { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" })
                guard !word.isEmpty else { throw bad("no value for \(key)") }
                if key == "TABLESPACE" || key == "TEMPLATE" {
                    guard word.first!.isLetter || word.first == "_", !word.contains("-") else { throw bad("\(key) \(word)") }
                }
                spec.options.append(.init(key: key, value: word, quoted: false))
                s = s.dropFirst(word.count)
            }
        }
        return spec
    }
}
