import Foundation
import MSBKit
import LibPQ
import Yams
#if canImport(Glibc)
import Glibc
#endif

/// Where the database is and how to reach it, resolved from the config and regiond.conf.
/// The password is never put on a command line: libpq and pg_dump read it from a 0600 passfile.
public struct PostgresTarget: Sendable {
    public var host: String?
    public var port: Int?
    public var user: String
    public var maasDatabase: String
    public var scope: Config.Scope
    /// A password (from regiond.conf or password_file); kept in memory and written only to a 0600 passfile.
    package var password: String?
    /// OS user to connect as over a local socket (peer authentication), when there is no password.
    public var osUser: (name: String, uid: uid_t, gid: gid_t)?
    public var binDir: String?
    /// Passwords known for roles (regiond.conf's database_user, the configured user): restore logs
    /// in as a database's owner with it when the owner is one of them. Never written but to a passfile.
    package var ownerPasswords: [String: String] = [:]

    /// Resolves the target: config keys first, then regiond.conf under the root (empty values count
    /// as unset: `maas config-vault migrate` empties database_name, database_user and database_pass),
    /// then the local socket as the postgres user. Without a database name from either, a local
    /// target finds the one database holding maasserver_* tables (`fallbackDatabase` instead when
    /// given: restore passes the archive's).
    public static func resolve(_ config: Config, fallbackDatabase: String? = nil) throws -> PostgresTarget {
        let d = config.database
        let regiond = try RegionLayout.regiondConf(config)
        // A MAAS region's database is usually local: then connect as the postgres superuser over
        // the socket (peer authentication), which can dump the roles too. regiond.conf's own user
        // (maas, not a superuser) is used only for a remote database or when the config says so.
        let regiondHost = regiond["database_host"] ?? ""
        let regiondIsLocal = regiondHost.isEmpty || ["localhost", "127.0.0.1", "::1"].contains(regiondHost) || regiondHost.hasPrefix("/")
        let useRegiondCredentials = d.host == nil && d.user == nil && !regiondIsLocal
        if let why = RegionLayout.vaultCredentialsMissing(config) {
            throw BackupError.config(why, hint: RegionLayout.vaultCredentialsHint)
        }
        var password: String?
        if let pf = d.passwordFile {
            password = try readPasswordFile(pf)
        } else if useRegiondCredentials, let p = regiond["database_pass"] {
            password = p
        }
        let host = d.host ?? (useRegiondCredentials || regiondHost.hasPrefix("/") ? regiondHost : nil)
        let port = d.port ?? regiond["database_port"].flatMap { Int($0) }
        let user = d.user ?? (useRegiondCredentials ? regiond["database_user"] ?? "maas" : "postgres")
        let named = d.name.flatMap { $0.isEmpty ? nil : $0 } ?? regiond["database_name"]
        var os: (String, uid_t, gid_t)?
        let localSocket = host == nil || host!.hasPrefix("/")
        if password == nil && localSocket {
            let osName = d.osUser ?? (user == "postgres" ? "postgres" : "root")
            guard let pw = getpwnam(osName) else {
                throw BackupError.config("database.os_user '\(osName)' is not a user on this system", hint: "set database.os_user to the OS user that may connect (peer authentication)")
            }
            os = (osName, pw.pointee.pw_uid, pw.pointee.pw_gid)
        }
        var target = PostgresTarget(host: host, port: port, user: user, maasDatabase: named ?? fallbackDatabase ?? "maasdb", scope: d.scope,
                                    password: password, osUser: os, binDir: d.binDir)
        if let p = password { target.ownerPasswords[user] = p }
        if let u = regiond["database_user"], !u.isEmpty, let p = regiond["database_pass"], !p.isEmpty, target.ownerPasswords[u] == nil {
            target.ownerPasswords[u] = p
        }
        if named == nil && fallbackDatabase == nil && password == nil && localSocket {
            target.maasDatabase = try RegionLayout.findMaasDatabase(target, passfile: nil)
        }
        return target
    }

    /// Reads database.password_file (or `key`, e.g. database.restore_password_file): a regular file owned by root that no group or other user may
    /// read or write (else exit 78, saying chmod 600 / chown root).
    static package func readPasswordFile(_ pf: String, key: String = "database.password_file") throws -> String {
        let fd = open(pf, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else {
            throw BackupError.config("\(key) \(pf) cannot be read: \(Errno.last.description)",
                                     hint: "create it (owner root, mode 0600) holding the password")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            throw BackupError.config("\(key) \(pf) is not a regular file", hint: "point it at a file (owner root, mode 0600) holding the password")
        }
        if st.st_uid != 0 && st.st_uid != geteuid() {
            throw BackupError.config("\(key) \(pf) belongs to uid \(st.st_uid), not root",
                                     hint: "run chown root \(pf) (and chmod 600 \(pf))")
        }
        if st.st_mode & 0o077 != 0 {
            throw BackupError.config("\(key) \(pf) has mode \(String(format: "%04o", st.st_mode & 0o7777)): other users may read or change it",
                                     hint: "run chmod 600 \(pf)")
        }
        var data: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while data.count <= 1 << 20 {
            let n = read(fd, &buf, buf.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            data += buf[0..<n]
        }
        guard let s = String(validating: data, as: UTF8.self) else {
            throw BackupError.config("\(key) \(pf) is not UTF-8 text", hint: "write the password as text")
        }
        return s.trimmingCharacters(in: .newlines)
    }

    /// Human description without secrets.
    public var display: String {
        "\(user)@\(host ?? "local socket")\(port.map { ":\($0)" } ?? "")/\(maasDatabase)"
    }

    /// libpq keywords for `database`; the password goes through `passfile`.
    package func parameters(database: String, passfile: String?) -> [(String, String)] {
        // PQConnection connects with expand_dbname 0: `database` is only ever a name.
        var p: [(String, String)] = [("dbname", database), ("user", user), ("application_name", "maas-snapshot-backup"),
                                     ("connect_timeout", "10")]
        if let host { p.append(("host", host)) }
        if let port { p.append(("port", String(port))) }
        if let passfile { p.append(("passfile", passfile)) }
        return p
    }

    /// Environment for pg_dump/psql: connection settings and the passfile; no password itself.
    package func environment(passfile: String?) -> [String: String?] {
        var e: [String: String?] = ["PGUSER": user, "PGPASSWORD": nil, "PGAPPNAME": "maas-snapshot-backup",
                                    "PGHOST": host, "PGPORT": port.map(String.init)]
        e["PGPASSFILE"] = passfile
        return e
    }

    /// A libpq connection string holding only `dbname`, quoted: for pg_dump's --dbname and
    /// pg_dumpall's --database, which take a name with "=" in it for a connection string (a
    /// database named "host=/tmp/evil dbname=maasdb" must not send them elsewhere).
    static package func conninfoDatabase(_ name: String) -> String {
        "dbname='" + name.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
    }

    /// The passfile's lines: the password for exactly this host, port and user, and the databases
    /// the run connects to (`databases`, the MAAS database, postgres and template1), never `*`.
    package func passfileText(databases: [String]) -> String? {
        guard let password else { return nil }
        let esc = { (s: String) in s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: ":", with: "\\:") }
        // libpq matches "localhost" for the default socket when no host is given.
        let h = esc(host ?? "localhost"), p = String(port ?? 5432)
        var seen = Set<String>()
        var text = ""
        for db in databases + [maasDatabase, "postgres", "template1"] where seen.insert(db).inserted {
            text += "\(h):\(p):\(esc(db)):\(esc(user)):\(esc(password))\n"
        }
        return text
    }

    /// Writes a 0600 passfile in `dir` when there is a password; returns its path. `databases`:
    /// the databases the run connects to beyond the MAAS database, postgres and template1.
    package func writePassfile(in dir: String, databases: [String] = []) throws -> String? {
        guard let line = passfileText(databases: databases) else { return nil }
        let path = dir + "/pgpass"
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw BackupError.failed("cannot create the passfile \(path): \(Errno.last.description)") }
        defer { close(fd) }
        do { try Errno.writeAll(fd, Array(line.utf8)) } catch {
            throw BackupError.failed("cannot write the passfile \(path): \(error.description)")
        }
        if let os = osUser { _ = fchown(fd, os.uid, os.gid) }
        return path
    }

    /// Opens a connection, as the OS user when peer authentication needs it.
    package func connect(database: String, passfile: String?) throws -> PQConnection {
        let params = parameters(database: database, passfile: passfile)
        do {
            if let os = osUser, os.uid != geteuid() {
                // Peer authentication reads the socket's credentials at connect time.
                return try PostgresTarget.asEffectiveUser(uid: os.uid, gid: os.gid) { try PQConnection(parameters: params) }
            }
            return try PQConnection(parameters: params)
        } catch let e as PQError {
            throw BackupError.unavailable("cannot connect to the database \(database) as \(display): \(e.message)",
                                          hint: "check database.* in the config, or that PostgreSQL is running")
        }
    }

    private static let euidLock = NSLock()
    static package func asEffectiveUser<T>(uid: uid_t, gid: gid_t, _ body: () throws -> T) throws -> T {
        euidLock.lock()
        defer { euidLock.unlock() }
        guard setegid(gid) == 0, seteuid(uid) == 0 else {
            _ = seteuid(0); _ = setegid(0)
            throw BackupError.failed("cannot switch to uid \(uid) to connect: \(Errno.last.description)")
        }
        defer { _ = seteuid(0); _ = setegid(0) }
        return try body()
    }

    package init(host: String? = nil, port: Int? = nil, user: String, maasDatabase: String, scope: Config.Scope, password: String? = nil, osUser: (name: String, uid: uid_t, gid: gid_t)? = nil, binDir: String? = nil) {
        self.host = host
        self.port = port
        self.user = user
        self.maasDatabase = maasDatabase
        self.scope = scope
        self.password = password
        self.osUser = osUser
        self.binDir = binDir
    }
}
