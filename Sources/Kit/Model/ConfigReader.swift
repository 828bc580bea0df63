import Foundation
import Yams

/// Reads typed values out of YAML nodes, with errors that name the key, the line and what is allowed.
struct Reader {
    package let source: String

    package func at(_ n: Node) -> String { n.mark.map { "\(source) line \($0.line)" } ?? source }

    package func fail(_ n: Node, _ key: String, _ what: String, _ hint: String) -> BackupError {
        BackupError.config("\(at(n)): \(key): \(what)", hint: hint)
    }

    package func unknown(_ key: String, _ n: Node, allowed: [String]) -> BackupError {
        BackupError.config("\(at(n)): unknown key '\(key)'", hint: "allowed keys here: \(allowed.joined(separator: ", "))")
    }

    package func mapping(_ n: Node, key: String) throws -> [(String, Node)] {
        if case .scalar(let s) = n, s.string.isEmpty || s.string == "~" || s.string == "null" { return [] }
        guard case .mapping(let m) = n else { throw fail(n, key, "must be a mapping of keys to values", "indent the keys below '\(key):'") }
        var seen = Set<String>()
        var out: [(String, Node)] = []
        for (k, v) in m {
            guard let ks = k.string else { throw fail(k, key, "has a key that is not text", "use plain key names") }
            guard seen.insert(ks).inserted else { throw fail(k, ks, "is given twice", "keep one") }
            out.append((ks, v))
        }
        return out
    }

    package func string(_ n: Node, key: String) throws -> String {
        guard case .scalar(let s) = n else { throw fail(n, key, "must be a single value", "write it as key: value") }
        return s.string
    }

    package func absolutePath(_ n: Node, key: String) throws -> String {
        let s = try string(n, key: key)
        guard s.hasPrefix("/") else { throw fail(n, key, "'\(s)' is not an absolute path", "start it with /") }
        guard !s.split(separator: "/").contains("..") else { throw fail(n, key, "'\(s)' contains '..'", "write the path without '..'") }
        return s.count > 1 && s.hasSuffix("/") ? String(s.dropLast()) : s
    }

    package func optionalAbsolutePath(_ n: Node, key: String) throws -> String? {
        if case .scalar(let s) = n, s.string.isEmpty || s.string == "~" || s.string == "null" { return nil }
        return try absolutePath(n, key: key)
    }

    package func list(_ n: Node, key: String) throws -> [Node] {
        if case .scalar(let s) = n, s.string.isEmpty || s.string == "~" || s.string == "null" { return [] }
        guard case .sequence(let seq) = n else { throw fail(n, key, "must be a list", "write one '- item' per line") }
        return Array(seq)
    }

    package func pathList(_ n: Node, key: String, allowEmpty: Bool) throws -> [String] {
        let items = try list(n, key: key).map { try absolutePath($0, key: key) }
        if !allowEmpty && items.isEmpty { throw fail(n, key, "is empty", "list at least one path") }
        return items
    }

    /// `ed25519:` and the standard base64 of 32 bytes (what `key show` prints).
    package func publicKey(_ n: Node, key: String) throws -> String {
        let s = try string(n, key: key).trimmingCharacters(in: .whitespaces)
        let b64 = s.hasPrefix("ed25519:") ? String(s.dropFirst(8)) : ""
        guard let raw = Data(base64Encoded: b64), raw.count == 32 else {
            throw fail(n, key, "'\(s)' is not an Ed25519 public key", "copy the line `maas-snapshot-backup key show` prints on the host that made the archives (ed25519:BASE64)")
        }
        return "ed25519:" + b64
    }

    package func serviceList(_ n: Node, key: String) throws -> [String] {
        try list(n, key: key).map { item in
            let s = try string(item, key: key)
            let ok = !s.isEmpty && s.allSatisfy { $0.isLetter || $0.isNumber || "-_.@:".contains($0) } && !s.hasPrefix("-")
            guard ok else { throw fail(item, key, "'\(s)' is not a systemd unit name", "use names like maas-regiond") }
            return s
        }
    }

    package func choice<T: RawRepresentable & CaseIterable>(_ n: Node, key: String) throws -> T where T.RawValue == String {
        let s = try string(n, key: key)
        guard let v = T(rawValue: s) else {
            throw fail(n, key, "'\(s)' is not allowed", "use one of: \(T.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return v
    }

    package func bool(_ n: Node, key: String) throws -> Bool {
        let s = try string(n, key: key)
        switch s.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw fail(n, key, "'\(s)' is not true or false", "write true or false")
        }
    }

    package func int(_ n: Node, key: String, range: ClosedRange<Int>) throws -> Int {
        let s = try string(n, key: key)
        guard let v = Int(s), range.contains(v) else {
            throw fail(n, key, "'\(s)' is not a whole number from \(range.lowerBound) to \(range.upperBound)", "give a number in that range")
        }
        return v
    }

    package func size(_ n: Node, key: String) throws -> Int64 {
        let s = try string(n, key: key)
        guard let v = Reader.parseSize(s) else {
            throw fail(n, key, "'\(s)' is not a size", "write bytes or a number with K, M, G or T, e.g. 64M")
        }
        return v
    }

    static package func parseSize(_ s: String) -> Int64? {
        var t = s.trimmingCharacters(in: .whitespaces).uppercased()
        if t.hasSuffix("IB") { t.removeLast(2) } else if t.hasSuffix("B") { t.removeLast() }
        var mult: Int64 = 1
        if let last = t.last, let m = ["K": Int64(1) << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40][String(last)] {
            mult = m
            t.removeLast()
        }
        guard let v = Int64(t), v >= 0, v <= Int64.max / mult else { return nil }
        return v * mult
    }

    package func lvmSize(_ n: Node, key: String) throws -> String {
        let s = try string(n, key: key)
        let pct = s.split(separator: "%", maxSplits: 1)
        if pct.count == 2, let p = Int(pct[0]), (1...100).contains(p), ["ORIGIN", "VG", "FREE"].contains(String(pct[1])) { return s }
        if Reader.parseSize(s) != nil { return s }
        throw fail(n, key, "'\(s)' is not an LVM snapshot size", "write e.g. 20%ORIGIN, 10%VG or 2G")
    }

    package func database(_ n: Node) throws -> Config.Database {
        var d = Config.Database()
        for (k, v) in try mapping(n, key: "database") {
            let key = "database.\(k)"
            switch k {
            case "host":
                let s = try string(v, key: key)
                d.host = s.isEmpty ? nil : s
            case "port": d.port = try int(v, key: key, range: 1...65535)
            case "user": d.user = try string(v, key: key)
            case "name": d.name = try string(v, key: key)
            case "scope": d.scope = try choice(v, key: key)
            case "password_file": d.passwordFile = try optionalAbsolutePath(v, key: key)
            case "os_user": d.osUser = try string(v, key: key)
            case "bin_dir": d.binDir = try optionalAbsolutePath(v, key: key)
            case "restore_user": d.restoreUser = try string(v, key: key)
            case "restore_password_file": d.restorePasswordFile = try optionalAbsolutePath(v, key: key)
            case "load_jobs": d.loadJobs = try int(v, key: key, range: 0...32)
            default: throw unknown(key, v, allowed: Config.databaseKeys)
            }
        }
        if d.restoreUser?.isEmpty == true {
            throw fail(n, "database.restore_user", "must not be empty", "name a PostgreSQL role, or leave the key out")
        }
        if d.restorePasswordFile != nil && d.restoreUser == nil {
            throw fail(n, "database.restore_password_file", "is set without database.restore_user", "set database.restore_user to the role the password is for")
        }
        return d
    }
}

public func parseSize(_ s: String) -> Int64? { Reader.parseSize(s) }
