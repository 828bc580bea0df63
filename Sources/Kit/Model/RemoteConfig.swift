import Foundation
import Yams

/// The `remote:` section (issue 16): off-host copies of the archives in a restic repository.
///
///     remote:
///       repository: sftp:backup@vault.example:/srv/restic/maas   # any restic repository string
///       password_file: /etc/maas-snapshot-backup/restic-password  # root's, mode 0600
///       env_file: /etc/maas-snapshot-backup/restic.env            # optional: KEY=VALUE back-end credentials
///       copy: after-backup                                        # or off (the default)
///       options: ["sftp.command=ssh -i /root/.ssh/backup backup@vault.example -s sftp"]
///       retention: {keep: 14, keep_pre_upgrade: 5, max_age_days: 180}   # each defaults to retention.*
public struct RemoteConfig: Sendable, Codable, Equatable {
    public enum CopyMode: String, Sendable, Codable, CaseIterable {
        case afterBackup = "after-backup"
        case off
    }

    /// Each value absent here is the local `retention`'s.
    public struct Retention: Sendable, Codable, Equatable {
        public var keep: Int?
        public var keepPreUpgrade: Int?
        public var maxAgeDays: Int?
        public init() {}
    }

    public var repository: String
    public var passwordFile: String
    public var envFile: String?
    public var copy: CopyMode = .off
    public var options: [String] = []
    public var retention = Retention()

    public init(repository: String, passwordFile: String) {
        self.repository = repository
        self.passwordFile = passwordFile
    }

    static let keys = ["repository", "password_file", "env_file", "copy", "options", "retention"]
    static let retentionKeys = ["keep", "keep_pre_upgrade", "max_age_days"]

    /// A restic `-o` option: KEY=VALUE with a key of letters, digits and `.-_`.
    public static func isResticOption(_ o: String) -> Bool {
        guard let eq = o.firstIndex(of: "="), eq != o.startIndex else { return false }
        return o[..<eq].allSatisfy { ($0.isLetter && $0.isASCII) || $0.isNumber || ".-_".contains($0) }
    }

    /// Parses the `remote:` node; nil when it is empty.
    static func parse(_ node: Node, source: String) throws -> RemoteConfig? {
        let r = Reader(source: source)
        let entries = try r.mapping(node, key: "remote")
        if entries.isEmpty { return nil }
        var repository: String?, passwordFile: String?
        var c = RemoteConfig(repository: "", passwordFile: "")
        for (k, v) in entries {
            let key = "remote.\(k)"
            switch k {
            case "repository": repository = try r.repository(v, key: key)
            case "password_file": passwordFile = try r.absolutePath(v, key: key)
            case "env_file": c.envFile = try r.absolutePath(v, key: key)
            case "copy":
                let s = try r.string(v, key: key)
                guard let m = CopyMode(rawValue: s) else {
                    throw r.fail(v, key, "'\(s)' is not allowed", "use one of: after-backup, off")
                }
                c.copy = m
            case "options":
                c.options = try r.list(v, key: key).map { item in
                    let s = try r.string(item, key: key)
                    guard RemoteConfig.isResticOption(s), !s.contains(where: { $0.isNewline }) else {
                        throw r.fail(item, key, "'\(s)' is not a restic option", "write KEY=VALUE, e.g. sftp.command=ssh -i /root/.ssh/key host -s sftp")
                    }
                    return s
                }
            case "retention":
                for (rk, rv) in try r.mapping(v, key: key) {
                    let rkey = "remote.retention.\(rk)"
                    switch rk {
                    case "keep": c.retention.keep = try r.int(rv, key: rkey, range: 1...100000)
                    case "keep_pre_upgrade": c.retention.keepPreUpgrade = try r.int(rv, key: rkey, range: 0...100000)
                    case "max_age_days": c.retention.maxAgeDays = try r.int(rv, key: rkey, range: 0...100000)
                    default: throw r.unknown(rkey, rv, allowed: retentionKeys)
                    }
                }
            default: throw r.unknown(key, v, allowed: keys)
            }
        }
        guard let repository else {
            throw r.fail(node, "remote.repository", "is missing", "name the restic repository, e.g. sftp:user@host:/srv/restic/maas")
        }
        guard let passwordFile else {
            throw r.fail(node, "remote.password_file", "is missing", "name a file (owner root, mode 0600) holding the repository's password")
        }
        c.repository = repository
        c.passwordFile = passwordFile
        return c
    }
}

/// The repository string: one line, not an option.
extension Reader {
    func repository(_ n: Node, key: String) throws -> String {
        let s = try string(n, key: key)
        guard !s.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw fail(n, key, "is empty", "name the restic repository, e.g. sftp:user@host:/srv/restic/maas, rest:https://host/, s3:..., or a path")
        }
        // The value is not repeated: a rest: URL may hold a password.
        guard !s.hasPrefix("-"), !s.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
            throw fail(n, key, "is not a restic repository string", "write it on one line, not starting with '-'")
        }
        return s
    }
}
