import Foundation
import MSBKit

/// The statements of dump.sql's roles part (`pg_dumpall --globals-only --clean`), read one by one
/// with a small lexer: words, "identifiers", 'strings', numbers and `; = , ( )`. Anything else
/// (a psql variable `:x`, a backslash, a dollar quote, an E'' string) makes the statement unreadable,
/// and so refused: that part runs on a privileged connection.
package enum RoleStatement: Equatable, Sendable {
    /// `CREATE ROLE r [[WITH] options]` or `ALTER ROLE r [WITH] options`.
    case role(create: Bool, name: String, options: [RoleOption])
    /// `DROP ROLE [IF EXISTS] r, ...`: never run.
    case drop([String])
    /// `GRANT r, ... TO m, ... [WITH ADMIN OPTION] [GRANTED BY g]`.
    case grant(roles: [String], members: [String], admin: Bool)
    /// `COMMENT ON ROLE r IS '...'|NULL`.
    case comment(role: String, text: String?)
    /// `ALTER ROLE r [IN DATABASE d] SET|RESET ...`: role settings, not restored.
    case settings(role: String)
    /// Tablespaces, security labels: the cluster's own, never touched.
    case clusterObject(String)
    /// A `SET` of a session setting, or pg_dump's `SELECT pg_catalog.set_config('search_path', '', false)`.
    case session

    package enum RoleOption: Equatable, Sendable {
        /// SUPERUSER, CREATEDB, LOGIN ... (`on`) or NOSUPERUSER, NOCREATEDB, NOLOGIN ... (`on` false).
        case flag(String, on: Bool)
        case connectionLimit(Int)
        case password(String?)
        case validUntil(String)
    }

    /// Attributes a role may only keep, never gain, through a restore.
    static package let strong: Set<String> = ["SUPERUSER", "CREATEROLE", "CREATEDB", "REPLICATION", "BYPASSRLS"]
    static package let flags: Set<String> = strong.union(["INHERIT", "LOGIN"])
    /// Session settings the roles part may carry (they change nothing outside the session; skipped).
    static package let sessionSettings: Set<String> = ["default_transaction_read_only", "client_encoding", "standard_conforming_strings",
                                                       "statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout",
                                                       "client_min_messages", "check_function_bodies", "xmloption", "row_security"]

    // MARK: - Lexer

    package enum Token: Equatable {
        case word(String)       // upper-cased keyword or bare identifier (its original spelling in `raw`)
        case ident(String)      // "quoted identifier"
        case string(String)
        case number(Int)
        case punct(Character)
    }

    package struct Unreadable: Error { package var why: String }

    /// The tokens of one statement, up to and without its `;`; nil when `text` holds no complete statement yet.
    static package func tokens(_ text: String) throws -> [(Token, String)]? {
        var out: [(Token, String)] = []
        let s = Array(text.unicodeScalars)
        var i = 0
        func isWordStart(_ c: Unicode.Scalar) -> Bool { c.properties.isAlphabetic || c == "_" }
        func isWord(_ c: Unicode.Scalar) -> Bool { isWordStart(c) || ("0"..."9").contains(c) || c == "$" }
        while i < s.count {
            let c = s[i]
            if c == " " || c == "\t" || c == "\n" || c == "\r" { i += 1; continue }
            if c == "-" && i + 1 < s.count && s[i + 1] == "-" {
                while i < s.count && s[i] != "\n" { i += 1 }
                continue
            }
            if c == ";" {
                // Only whitespace and comments may follow on the statement's last line.
                let rest = String(String.UnicodeScalarView(s[(i + 1)...])).trimmingCharacters(in: .whitespacesAndNewlines)
                guard rest.isEmpty || rest.hasPrefix("--") else { throw Unreadable(why: "more than one statement on a line") }
                return out
            }
            if c == "'" || c == "\"" {
                var v = "", j = i + 1, closed = false
                while j < s.count {
                    if s[j] == c {
                        if j + 1 < s.count && s[j + 1] == c { v.unicodeScalars.append(c); j += 2; continue }
                        closed = true; j += 1; break
                    }
                    v.unicodeScalars.append(s[j]); j += 1
                }
                guard closed else { return nil }  // a string going on on the next line
                if c == "\"" && v.isEmpty { throw Unreadable(why: "an empty identifier") }
                out.append((c == "'" ? .string(v) : .ident(v), v))
                i = j
                continue
            }
            if isWordStart(c) {
                var j = i
                while j < s.count && isWord(s[j]) { j += 1 }
                let w = String(String.UnicodeScalarView(s[i..<j]))
                // E'...', U&'...', B'...': other string syntaxes, not written by pg_dumpall.
                if j < s.count && (s[j] == "'" || s[j] == "&") { throw Unreadable(why: "a \(w)'' string") }
                out.append((.word(w.uppercased()), w))
                i = j
                continue
            }
            if ("0"..."9").contains(c) || (c == "-" && i + 1 < s.count && ("0"..."9").contains(s[i + 1])) {
                var j = i + 1
                while j < s.count && ("0"..."9").contains(s[j]) { j += 1 }
                guard let n = Int(String(String.UnicodeScalarView(s[i..<j]))) else { throw Unreadable(why: "a number out of range") }
                out.append((.number(n), String(n)))
                i = j
                continue
            }
            if "=,().".unicodeScalars.contains(c) { out.append((.punct(Character(c)), String(c))); i += 1; continue }
            throw Unreadable(why: "the character \(c.escaped(asASCII: true))")
        }
        return nil
    }

    // MARK: - Parser

    /// Reads one statement's tokens; throws Unreadable for anything outside the allow-list.
    static package func parse(_ tokens: [(Token, String)]) throws -> RoleStatement {
        var p = Parser(t: tokens.map(\.0))
        let first = p.word()
        switch first {
        case "SET":
            guard let name = p.word(), sessionSettings.contains(name.lowercased()) else { throw Unreadable(why: "a SET of a setting not known to be harmless") }
            guard p.eat(.punct("=")) || p.eat(.word("TO")) else { throw Unreadable(why: "a SET without a value") }
            guard p.next() != nil, p.done else { throw Unreadable(why: "a SET with more than one value") }
            return .session
        case "SELECT":
            let setConfig: [Token] = [.word("SELECT"), .word("PG_CATALOG"), .punct("."), .word("SET_CONFIG"), .punct("("), .string("search_path"),
                                      .punct(","), .string(""), .punct(","), .word("FALSE"), .punct(")")]
            guard p.t == setConfig else { throw Unreadable(why: "a SELECT") }
            return .session
        case "DROP":
            if p.eat(.word("TABLESPACE")) { return .clusterObject("tablespace") }
            guard p.eat(.word("ROLE")) else { throw Unreadable(why: "a DROP of something else than a role") }
            if p.eat(.word("IF")) { guard p.eat(.word("EXISTS")) else { throw Unreadable(why: "DROP ROLE IF without EXISTS") } }
            return .drop(try p.names())
        case "CREATE", "ALTER":
            if p.eat(.word("TABLESPACE")) { return .clusterObject("tablespace") }
            guard p.eat(.word("ROLE")) || p.eat(.word("USER")) else { throw Unreadable(why: "\(first!) of something else than a role") }
            guard let name = p.name() else { throw Unreadable(why: "no role name") }
            if first == "ALTER", case .word(let w)? = p.peek, ["SET", "RESET", "IN"].contains(w) { return .settings(role: name) }
            _ = p.eat(.word("WITH"))
            return .role(create: first == "CREATE", name: name, options: try p.roleOptions())
        case "GRANT":
            if p.t.contains(.word("TABLESPACE")) { return .clusterObject("tablespace") }
            let roles = try p.names()
            guard p.eat(.word("TO")) else { throw Unreadable(why: "a GRANT of something else than a role") }
            let members = try p.names()
            var admin = false
            if p.eat(.word("WITH")) {
                repeat {
                    guard let opt = p.word(), ["ADMIN", "INHERIT", "SET"].contains(opt) else { throw Unreadable(why: "a GRANT option") }
                    let value = p.eat(.word("OPTION")) || p.eat(.word("TRUE")) ? true : (p.eat(.word("FALSE")) ? false : nil)
                    guard let value else { throw Unreadable(why: "a GRANT option without a value") }
                    if opt == "ADMIN" { admin = value }
                } while p.eat(.punct(","))
            }
            if p.eat(.word("GRANTED")) { guard p.eat(.word("BY")), p.name() != nil else { throw Unreadable(why: "GRANTED without a role") } }
            guard p.done else { throw Unreadable(why: "more after a GRANT") }
            return .grant(roles: roles, members: members, admin: admin)
        case "REVOKE":
            if p.t.contains(.word("TABLESPACE")) { return .clusterObject("tablespace") }
            throw Unreadable(why: "a REVOKE")
        case "COMMENT":
            guard p.eat(.word("ON")) else { throw Unreadable(why: "COMMENT without ON") }
            if p.eat(.word("TABLESPACE")) { return .clusterObject("tablespace") }
            guard p.eat(.word("ROLE")), let name = p.name(), p.eat(.word("IS")) else { throw Unreadable(why: "a COMMENT on something else than a role") }
            if p.eat(.word("NULL")), p.done { return .comment(role: name, text: nil) }
            guard case .string(let text)? = p.next(), p.done else { throw Unreadable(why: "a COMMENT that is not one string") }
            return .comment(role: name, text: text)
        case "SECURITY":
            return .clusterObject("security label")
        default:
            throw Unreadable(why: "a statement a roles part does not hold")
        }
    }

    struct Parser {
        var t: [Token]
        var i = 0
        var peek: Token? { i < t.count ? t[i] : nil }
        var done: Bool { i >= t.count }
        mutating func next() -> Token? { defer { i += 1 }; return peek }
        mutating func eat(_ x: Token) -> Bool { if peek == x { i += 1; return true }; return false }
        mutating func word() -> String? { if case .word(let w)? = peek { i += 1; return w }; return nil }
        /// A role name: a bare word (folded to lower case, as the server does) or a "quoted" one.
        mutating func name() -> String? {
            switch peek {
            case .word(let w)?: i += 1; return w.lowercased()
            case .ident(let s)?: i += 1; return s
            default: return nil
            }
        }
        mutating func names() throws -> [String] {
            var out: [String] = []
            repeat {
                guard let n = name() else { throw Unreadable(why: "a role name missing in a list") }
                out.append(n)
            } while eat(.punct(","))
            return out
        }
        mutating func roleOptions() throws -> [RoleOption] {
            var out: [RoleOption] = []
            while let w = word() {
                if RoleStatement.flags.contains(w) { out.append(.flag(w, on: true)); continue }
                if w.hasPrefix("NO"), RoleStatement.flags.contains(String(w.dropFirst(2))) { out.append(.flag(String(w.dropFirst(2)), on: false)); continue }
                switch w {
                case "CONNECTION":
                    guard eat(.word("LIMIT")), case .number(let n)? = next() else { throw Unreadable(why: "CONNECTION without LIMIT n") }
                    out.append(.connectionLimit(n))
                case "PASSWORD", "ENCRYPTED":
                    if w == "ENCRYPTED" { guard eat(.word("PASSWORD")) else { throw Unreadable(why: "ENCRYPTED without PASSWORD") } }
                    if eat(.word("NULL")) { out.append(.password(nil)); continue }
                    guard case .string(let s)? = next() else { throw Unreadable(why: "PASSWORD without a string") }
                    out.append(.password(s))
                case "VALID":
                    guard eat(.word("UNTIL")), case .string(let s)? = next() else { throw Unreadable(why: "VALID without UNTIL '...'") }
                    out.append(.validUntil(s))
                default:
                    throw Unreadable(why: "the role option \(w)")
                }
            }
            guard done else { throw Unreadable(why: "more after the role options") }
            return out
        }
    }

    // MARK: - Our own text

    /// A string literal that reads the same whatever standard_conforming_strings is.
    static package func literal(_ s: String) -> String {
        "E'" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "''") + "'"
    }

    /// The statement as we send it: every name and value quoted by us.
    static package func text(create: Bool, name: String, options: [RoleOption]) -> String {
        var s = (create ? "CREATE ROLE " : "ALTER ROLE ") + DumpSplitter.quoteIdent(name)
        var parts: [String] = []
        for o in options {
            switch o {
            case .flag(let f, let on): parts.append((on ? "" : "NO") + f)
            case .connectionLimit(let n): parts.append("CONNECTION LIMIT \(n)")
            case .password(let p): parts.append("PASSWORD " + (p.map(literal) ?? "NULL"))
            case .validUntil(let v): parts.append("VALID UNTIL " + literal(v))
            }
        }
        if !parts.isEmpty { s += " WITH " + parts.joined(separator: " ") }
        return s + ";"
    }
}
