import Foundation
import Yams

/// The configuration (README "Configuration"). Every key is optional; defaults suit a deb-installed MAAS.
public struct Config: Sendable, Codable, Equatable {
    public enum SnapshotChoice: String, Sendable, Codable, CaseIterable { case auto, btrfs, lvm, none }
    public enum Scope: String, Sendable, Codable, CaseIterable { case all, maas }
    public enum OnFailure: String, Sendable, Codable, CaseIterable { case block, warn }
    /// How MAAS is held still for the window: `freeze` (systemd's cgroup freezer: the processes
    /// pause and keep their PIDs and connections), `stop` (stopped and started again), `auto`
    /// (freeze when every active unit can be frozen, else stop).
    public enum Quiesce: String, Sendable, Codable, CaseIterable { case auto, freeze, stop }
    /// Which MAAS 3.5+ boot image files (/var/lib/maas/image-storage) the archive holds: `uploaded`
    /// (those of uploaded resources, which exist nowhere else; synced ones are downloaded again),
    /// `all`, or `none` (no file the image rows name).
    public enum Images: String, Sendable, Codable, CaseIterable { case uploaded, all, none }

    public struct Database: Sendable, Codable, Equatable {
        /// Host name, or the folder holding the server's unix socket. nil: from regiond.conf, else libpq's default socket.
        public var host: String?
        public var port: Int?
        public var user: String?
        /// The MAAS database (from regiond.conf, else "maasdb").
        public var name: String?
        public var scope: Scope = .maas
        /// A file holding the password (mode 0600); else regiond.conf's database_pass, else none.
        public var passwordFile: String?
        /// OS user to connect as over a local socket (peer authentication) when there is no password.
        public var osUser: String?
        /// Folder with pg_dump; default /usr/lib/postgresql/<server major>/bin.
        public var binDir: String?
        /// A stronger role for restore (CREATEDB, owner of the databases it renames); nil: `user`.
        public var restoreUser: String?
        /// The password file of `restoreUser`, read like `passwordFile`.
        public var restorePasswordFile: String?
        /// psql sessions restore and `verify --deep` load each database with; 0: one per CPU, at most 4.
        public var loadJobs = 0
        public init() {}

        /// `loadJobs` for this host.
        public var effectiveLoadJobs: Int {
            loadJobs > 0 ? loadJobs : min(max(ProcessInfo.processInfo.activeProcessorCount, 1), 4)
        }
    }

    public struct LVM: Sendable, Codable, Equatable {
        public var snapshotSize = "20%ORIGIN"
        public init() {}
    }

    public struct Retention: Sendable, Codable, Equatable {
        public var keep = 7
        public var keepPreUpgrade = 3
        public var maxAgeDays = 90
        /// Run this retention after every successful backup (`prune` also runs alone).
        public var afterBackup = true
        public init() {}
    }

    public struct Hook: Sendable, Codable, Equatable {
        public var onFailure: OnFailure = .block
        public init() {}
    }

    /// What `status` counts as a problem (besides a failed run).
    public struct StatusBounds: Sendable, Codable, Equatable {
        /// `status` exits 4 when the newest backup in the destination is older than this many hours
        /// (or there is none); 0: never. 36 suits the daily timer (its randomized delay included).
        public var maxBackupAgeHours = 36
        public init() {}
    }

    public var root = "/"
    public var destination = "/var/backups/maas-snapshot-backup"
    public var paths = ["/etc/maas", "/var/lib/maas"]
    public var exclude = ["/var/lib/maas/boot-resources"]
    public var images: Images = .uploaded
    public var services = Config.defaultServices
    public var snapshot: SnapshotChoice = .auto
    public var quiesce: Quiesce = .auto
    public var database = Database()
    public var copyInWindowMax: Int64 = 64 << 20
    public var compressionLevel = 6
    /// 0: one per online CPU.
    public var compressionThreads = 0
    /// Seconds the services may stay stopped before the run gives up and starts them again.
    public var windowTimeout = 120
    /// Seconds (wall-clock) a restore, rollback or recover waits for each started MAAS unit to be
    /// active (a real region serves after tens of seconds) before it counts the unit as failed.
    public var startTimeout = 120
    public var lvm = LVM()
    public var retention = Retention()
    public var hook = Hook()
    public var status = StatusBounds()
    public var metricsTextfile: String?
    /// In a root-owned 0700 folder (made by RunLock): /run/lock is writable by every user.
    public var lockFile = "/run/maas-snapshot-backup/lock"
    public var stateDir = "/var/lib/maas-snapshot-backup"
    /// This host's Ed25519 signing key (root's, 0600, made by the first backup): every archive's
    /// manifest is signed with it (README "Security").
    public var signingKey = "/etc/maas-snapshot-backup/signing-key"
    /// Public keys (`ed25519:BASE64`, as `key show` prints them) whose archives verify, restore
    /// and rollback trust besides this host's own: another region's, or a lost host's.
    public var trustedKeys: [String] = []
    /// Off-host copies in a restic repository (RemoteConfig.swift); nil: none.
    public var remote: RemoteConfig?

    public static let defaultPath = "/etc/maas-snapshot-backup/config.yaml"
    /// In dependency order: stopped in this order, started in reverse. MAAS 3.5+ adds maas-http
    /// (nginx in front of the region: stopped first), maas-proxy and maas-syslog (which the others
    /// log to: stopped last); all three keep files open in /var/lib/maas. Units that are not
    /// active (or do not exist, as on 3.4) are left alone.
    public static let defaultServices = [
        "maas-http", "maas-regiond", "maas-rackd", "maas-dhcpd", "maas-dhcpd6", "maas-apiserver",
        "maas-temporal", "maas-temporal-worker", "maas-agent", "maas-proxy", "maas-syslog",
    ]

    public init() {}

    /// A path of the MAAS host as seen from here (under `root`).
    /// Whether this host holds a MAAS region to back up: `etc/maas/regiond.conf` under root, or a
    /// database named in the config. A host with only the MAAS client or a rack controller has
    /// none, and the package hooks then let the change go on without a backup.
    public var hasMaasRegion: Bool {
        database.name != nil || database.host != nil || FileManager.default.fileExists(atPath: live("/etc/maas/regiond.conf"))
    }

    public func live(_ path: String) -> String {
        Config.join(root, path)
    }

    /// The inverse of `live`: a path below `root` as an archive member (relative, no leading slash).
    public func member(of live: String) -> String {
        var r = root
        if r.hasSuffix("/") { r.removeLast() }
        var m = live.hasPrefix(r + "/") ? String(live.dropFirst(r.count)) : live
        while m.hasPrefix("/") { m.removeFirst() }
        return m
    }

    static package func join(_ root: String, _ path: String) -> String {
        if root == "/" || root.isEmpty { return path }
        let r = root.hasSuffix("/") ? String(root.dropLast()) : root
        return r + (path.hasPrefix("/") ? path : "/" + path)
    }
}

// MARK: - Loading

extension Config {
    /// Loads `path`; when `path` is nil, the default file if it exists, else the defaults.
    public static func load(path: String?) throws -> Config {
        let file = path ?? defaultPath
        guard FileManager.default.fileExists(atPath: file) else {
            if path != nil {
                throw BackupError.config("config file \(file) does not exist", hint: "give an existing file with --config, or leave --config out to use the defaults")
            }
            return Config()
        }
        guard let data = FileManager.default.contents(atPath: file) else {
            throw BackupError.config("config file \(file) cannot be read", hint: "check its permissions")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw BackupError.config("config file \(file) is not UTF-8 text")
        }
        return try parse(yaml: text, source: file)
    }

    public static func parse(yaml: String, source: String = "config") throws -> Config {
        let node: Node?
        try SafeYAML.refuseAliases(yaml, source: source)
        do {
            node = try Yams.compose(yaml: yaml)
        } catch {
            let first = "\(error)".split(separator: "\n").first.map(String.init) ?? "\(error)"
            throw BackupError.config("\(source): not valid YAML: \(first)", hint: "fix the syntax")
        }
        var c = Config()
        guard let node else { return c }
        if case .scalar(let s) = node, s.string.isEmpty || s.string == "~" { return c }
        let r = Reader(source: source)
        let top = try r.mapping(node, key: "(top level)")
        for (k, v) in top {
            switch k {
            case "root": c.root = try r.absolutePath(v, key: k)
            case "destination": c.destination = try r.absolutePath(v, key: k)
            case "paths": c.paths = try r.pathList(v, key: k, allowEmpty: false)
            case "exclude": c.exclude = try r.pathList(v, key: k, allowEmpty: true)
            case "images": c.images = try r.choice(v, key: k)
            case "services": c.services = try r.serviceList(v, key: k)
            case "snapshot": c.snapshot = try r.choice(v, key: k)
            case "quiesce": c.quiesce = try r.choice(v, key: k)
            case "database": c.database = try r.database(v)
            case "copy_in_window_max": c.copyInWindowMax = try r.size(v, key: k)
            case "compression_level": c.compressionLevel = try r.int(v, key: k, range: 1...9)
            case "compression_threads": c.compressionThreads = try r.int(v, key: k, range: 0...256)
            case "window_timeout": c.windowTimeout = try r.int(v, key: k, range: 5...3600)
            case "start_timeout": c.startTimeout = try r.int(v, key: k, range: 1...3600)
            case "lvm":
                for (lk, lv) in try r.mapping(v, key: k) {
                    switch lk {
                    case "snapshot_size": c.lvm.snapshotSize = try r.lvmSize(lv, key: "lvm.snapshot_size")
                    default: throw r.unknown("lvm.\(lk)", lv, allowed: ["snapshot_size"])
                    }
                }
            case "retention":
                for (rk, rv) in try r.mapping(v, key: k) {
                    switch rk {
                    case "keep": c.retention.keep = try r.int(rv, key: "retention.keep", range: 1...100000)
                    case "keep_pre_upgrade": c.retention.keepPreUpgrade = try r.int(rv, key: "retention.keep_pre_upgrade", range: 0...100000)
                    case "max_age_days": c.retention.maxAgeDays = try r.int(rv, key: "retention.max_age_days", range: 0...100000)
                    case "after_backup": c.retention.afterBackup = try r.bool(rv, key: "retention.after_backup")
                    default: throw r.unknown("retention.\(rk)", rv, allowed: ["keep", "keep_pre_upgrade", "max_age_days", "after_backup"])
                    }
                }
            case "hook":
                for (hk, hv) in try r.mapping(v, key: k) {
                    switch hk {
                    case "on_failure": c.hook.onFailure = try r.choice(hv, key: "hook.on_failure")
                    default: throw r.unknown("hook.\(hk)", hv, allowed: ["on_failure"])
                    }
                }
            case "status":
                for (sk, sv) in try r.mapping(v, key: k) {
                    switch sk {
                    case "max_backup_age_hours": c.status.maxBackupAgeHours = try r.int(sv, key: "status.max_backup_age_hours", range: 0...100000)
                    default: throw r.unknown("status.\(sk)", sv, allowed: ["max_backup_age_hours"])
                    }
                }
            case "metrics_textfile": c.metricsTextfile = try r.optionalAbsolutePath(v, key: k)
            case "lock_file": c.lockFile = try r.absolutePath(v, key: k)
            case "state_dir": c.stateDir = try r.absolutePath(v, key: k)
            case "signing_key": c.signingKey = try r.absolutePath(v, key: k)
            case "trusted_keys": c.trustedKeys = try r.list(v, key: k).map { try r.publicKey($0, key: k) }
            case "remote": c.remote = try RemoteConfig.parse(v, source: source)
            default: throw r.unknown(k, v, allowed: Config.topKeys)
            }
        }
        return c
    }

    static package let topKeys = ["root", "destination", "paths", "exclude", "images", "services", "snapshot", "quiesce", "database",
                          "copy_in_window_max", "compression_level", "start_timeout", "compression_threads", "window_timeout",
                          "lvm", "retention", "hook", "status", "metrics_textfile", "lock_file", "state_dir", "signing_key", "trusted_keys", "remote"]
    static package let databaseKeys = ["host", "port", "user", "name", "scope", "password_file", "os_user", "bin_dir", "restore_user", "restore_password_file",
                                         "load_jobs"]
}
