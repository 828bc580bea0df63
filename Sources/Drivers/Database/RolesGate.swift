import Foundation
import MSBKit

/// What dump.sql's roles part may do on the privileged connection, statement by statement. It may
/// only create or change the roles MAAS's databases use (the owner of each dumped database, from the
/// dump and from the live cluster; never a superuser, never a predefined pg_* role), with no
/// attribute stronger than the live role has; `GRANT r TO m` only among those roles. Statements
/// about other roles, tablespaces and role settings are skipped (noted): other roles of the cluster
/// are never touched. Anything else refuses the archive (65), naming the line. `DROP ROLE` never runs.
/// Statements are held until the first database part (whose owner the dump names after the roles
/// part), then sent as our own text, every name and value quoted by us.
package struct RolesGate: Sendable {
    /// Live roles and the strong attributes (RoleStatement.strong) each has.
    package var live: [String: Set<String>]
    /// Owners of the dumped databases that exist live.
    package var liveOwners: Set<String>
    /// The roles statements may change; fixed at the first database part.
    private(set) package var allowed: Set<String>?
    private var held: [(line: Int, statement: RoleStatement, source: String)] = []
    private var text = ""
    private var textLine = 0
    /// Skipped statements worth saying (other roles, tablespaces, settings, CREATEDB not given).
    private(set) package var notes: [String] = []
    private var otherRoles: [String] = []

    package init(live: [String: Set<String>], liveOwners: Set<String>) {
        self.live = live
        self.liveOwners = liveOwners
    }

    static package func refusal(_ line: Int, _ statement: String, _ why: String) -> BackupError {
        let words = statement.split(whereSeparator: { $0.isWhitespace }).prefix(4).joined(separator: " ")
        return BackupError.data("dump.sql line \(line): the roles part holds `\(words.prefix(60))...` (\(why)); restore and verify refuse the archive: that part runs with the cluster's privileges and may only create or change the roles MAAS's databases use, never stronger than they are")
    }

    /// One line of the roles part; the statements to send now (none while they are held).
    mutating package func feed(_ line: String, number: Int) throws -> [String] {
        if text.isEmpty {
            let t = line.trimmingCharacters(in: .whitespaces)
            if t.isEmpty || t.hasPrefix("--") { return [] }
            if t.hasPrefix("\\") { throw RolesGate.refusal(number, line, "a psql meta-command") }
            textLine = number
        }
        text += text.isEmpty ? line : "\n" + line
        let tokens: [(RoleStatement.Token, String)]
        do {
            guard let t = try RoleStatement.tokens(text) else {
                if text.utf8.count > 1 << 20 { throw RolesGate.refusal(textLine, text, "a statement longer than 1 MiB") }
                return []
            }
            tokens = t
        } catch let e as RoleStatement.Unreadable {
            throw RolesGate.refusal(textLine, text, e.why)
        }
        let statement: RoleStatement
        do { statement = try RoleStatement.parse(tokens) } catch let e as RoleStatement.Unreadable {
            throw RolesGate.refusal(textLine, text, e.why)
        }
        let at = textLine, source = text
        text = ""
        guard let allowed else {
            held.append((at, statement, source))
            return []
        }
        return try decide(statement, line: at, source: source, allowed: allowed).map { [$0] } ?? []
    }

    /// Fixes the roles statements may change (`owners`: the dumped databases' owners the dump named
    /// so far) and returns the held statements to send. Called at each end of a roles part.
    mutating package func fix(owners: [String]) throws -> [String] {
        if !text.isEmpty { throw RolesGate.refusal(textLine, text, "a statement without its end") }
        if allowed == nil {
            allowed = liveOwners.union(owners).filter { !$0.hasPrefix("pg_") && !(live[$0]?.contains("SUPERUSER") ?? false) }
        }
        let out = try held.compactMap { try decide($0.statement, line: $0.line, source: $0.source, allowed: allowed!) }
        held = []
        if !otherRoles.isEmpty {
            notes.append("skipped the roles part's statements about roles MAAS's databases do not use, left as they are: \(otherRoles.joined(separator: ", "))")
            otherRoles = []
        }
        return out
    }

    private mutating func other(_ name: String) {
        if !otherRoles.contains(name) { otherRoles.append(name) }
    }

    private mutating func decide(_ s: RoleStatement, line: Int, source: String, allowed: Set<String>) throws -> String? {
        let refuse = { (why: String) in RolesGate.refusal(line, source.isEmpty ? RolesGate.describe(s) : source, why) }
        switch s {
        case .session, .drop:
            return nil
        case .clusterObject(let kind):
            notes.append("dump.sql line \(line): skipped a \(kind) statement (the cluster's own, not restored)")
            return nil
        case .settings(let role):
            notes.append("dump.sql line \(line): skipped settings of the role \(role) (role settings are not restored)")
            return nil
        case .comment(let role, let text):
            guard allowed.contains(role) else { other(role); return nil }
            return "COMMENT ON ROLE \(DumpSplitter.quoteIdent(role)) IS \(text.map(RoleStatement.literal) ?? "NULL");"
        case .grant(let roles, let members, let admin):
            if roles.allSatisfy(allowed.contains) && members.allSatisfy(allowed.contains) {
                return "GRANT \(roles.map(DumpSplitter.quoteIdent).joined(separator: ", ")) TO \(members.map(DumpSplitter.quoteIdent).joined(separator: ", "))"
                    + (admin ? " WITH ADMIN OPTION;" : ";")
            }
            if members.contains(where: allowed.contains) { throw refuse("it grants a role MAAS's databases do not use to one they use") }
            members.forEach { other($0) }
            return nil
        case .role(let create, let name, let options):
            let strongOn = options.compactMap { o -> String? in
                if case .flag(let f, true) = o, RoleStatement.strong.contains(f) { return f }
                return nil
            }
            guard allowed.contains(name) else {
                if live[name] == nil, let f = strongOn.first { throw refuse("it gives the role \(name), which MAAS's databases do not use, \(f)") }
                other(name)
                return nil
            }
            let has = live[name]
            if create && has != nil { return nil }  // it exists: the ALTER ROLE after it says the rest
            var kept = options
            for f in strongOn where !(has?.contains(f) ?? false) {
                guard f == "CREATEDB" else { throw refuse("it gives the role \(name) \(f), which it does not have here") }
                kept.removeAll { $0 == .flag(f, on: true) }
                notes.append("dump.sql line \(line): the role \(name) does not get CREATEDB (it does not have it here)")
            }
            return RoleStatement.text(create: create, name: name, options: kept)
        }
    }

    static package func describe(_ s: RoleStatement) -> String {
        switch s {
        case .role(let create, let name, _): return (create ? "CREATE ROLE " : "ALTER ROLE ") + name
        case .grant(let roles, let members, _): return "GRANT \(roles.joined(separator: ", ")) TO \(members.joined(separator: ", "))"
        default: return "\(s)"
        }
    }
}
