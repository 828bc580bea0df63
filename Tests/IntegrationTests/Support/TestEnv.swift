import Foundation
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A throwaway MAAS-like environment made by Tests/Fixtures/testenv.sh: a PostgreSQL 15 cluster with the
/// MAAS schema, a root tree with var/lib/maas on a Btrfs loop device, and a stand-in systemctl
/// whose daemons keep writing a counter to the database and to a file.
final class TestEnv: @unchecked Sendable {
    static let repo: URL = URL(fileURLWithPath: RepoRoot.of(#filePath))
    static let pgbin = "/usr/lib/postgresql/15/bin"

    let dir: String
    var root: String { dir + "/root" }
    var config: String { dir + "/config.yaml" }
    /// The config's signing_key: this environment's host key (made by its first backup).
    var signingKey: String { dir + "/signing-key" }
    var backups: String { dir + "/backups" }
    var maas: String { root + "/var/lib/maas" }

    /// Why the integration tests cannot run here, or nil.
    static var skipReason: String? {
        if geteuid() != 0 { return "integration tests need root (loop devices, Btrfs, runuser)" }
        if !FileManager.default.isExecutableFile(atPath: pgbin + "/initdb") { return "PostgreSQL 15 is not installed" }
        if !FileManager.default.isExecutableFile(atPath: "/usr/sbin/mkfs.btrfs") && !FileManager.default.isExecutableFile(atPath: "/sbin/mkfs.btrfs") {
            return "btrfs-progs is not installed"
        }
        return nil
    }

    static var schemaPresent: Bool {
        FileManager.default.fileExists(atPath: repo.deletingLastPathComponent().path + "/shared/fixtures/maas-schema/maas-3.4.0.sql")
    }

    /// `schema`: another schema than the 3.4.0 one (testenv.sh's TESTENV_SCHEMA): a path, or the name of a file in ../shared/fixtures/maas-schema ("maas-3.5.0").
    init(name: String, rows: Int = 2000, schema: String? = nil) throws {
        dir = "/tmp/msb-test-\(name)-\(getpid())"
        _ = try? TestEnv.sh(["bash", TestEnv.repo.path + "/Tests/Fixtures/testenv.sh", "down", dir])
        if !TestEnv.schemaPresent {
            print("note: ../shared/fixtures/maas-schema is absent; using the small stand-in schema")
        }
        var e = ProcessInfo.processInfo.environment
        if let schema { e["TESTENV_SCHEMA"] = schema }
        let r = try TestEnv.sh(["bash", TestEnv.repo.path + "/Tests/Fixtures/testenv.sh", "up", dir, "--rows", String(rows)], env: e)
        guard r.status == 0 else { throw TestFailure("testenv up failed: \(r.stderr)") }
    }

    func down() {
        _ = try? TestEnv.sh(["bash", TestEnv.repo.path + "/Tests/Fixtures/testenv.sh", "down", dir])
    }

    var environment: [String: String] {
        var e = ProcessInfo.processInfo.environment
        e["PATH"] = dir + "/bin:" + (e["PATH"] ?? "/usr/bin:/bin")
        e["FAKE_SYSTEMCTL_DIR"] = dir + "/svc"
        e.removeValue(forKey: "MSB_TEST_FAIL_AFTER")
        // quiesce auto stops here whatever the host (cgroup v2 or not): FreezeTests turn freezing on.
        e["MSB_TEST_CGROUP_CONTROLLERS"] = dir + "/no-cgroup2"
        return e
    }

    /// The built tool, next to the test bundle.
    static var binary: String {
        ToolBinary.path ?? repo.path + "/.build/debug/maas-snapshot-backup"
    }

    struct Result { var status: Int32; var stdout: String; var stderr: String }

    /// Runs the tool with `args` (plus --config) and extra environment.
    func tool(_ args: [String], env extra: [String: String] = [:], config: String? = nil) throws -> Result {
        var e = environment
        for (k, v) in extra { e[k] = v }
        return try TestEnv.sh([TestEnv.binary] + args + ["--config", config ?? self.config], env: e)
    }

    /// Starts the tool without waiting; returns its PID (reap it with waitpid).
    func start(_ args: [String], env extra: [String: String] = [:]) throws -> pid_t {
        var e = environment
        for (k, v) in extra { e[k] = v }
        return try RT.spawnDetached([TestEnv.binary] + args + ["--config", config], env: e)
    }

    /// The file a paused run writes when its pause begins (MSB_TEST_PAUSE_MARKER).
    var marker: String { dir + "/pause-marker" }

    /// Starts a backup that pauses after `step` and waits until it is there.
    func startPaused(at step: String, seconds: Int = 60, args: [String] = [], env extra: [String: String] = [:]) throws -> pid_t {
        try? FileManager.default.removeItem(atPath: marker)
        var e = extra
        e["MSB_TEST_PAUSE_AFTER"] = step; e["MSB_TEST_PAUSE_SECONDS"] = String(seconds); e["MSB_TEST_PAUSE_MARKER"] = marker
        let pid = try start(args, env: e)
        for _ in 0..<600 where !FileManager.default.fileExists(atPath: marker) {
            var st: Int32 = 0
            if waitpid(pid, &st, WNOHANG) == pid { throw TestFailure("the backup exited (status \(st)) before step \(step)") }
            usleep(50_000)
        }
        guard FileManager.default.fileExists(atPath: marker) else { throw TestFailure("the backup never reached step \(step)") }
        return pid
    }

    /// Reaps `pid`; its wait status.
    static func wait(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return status
    }

    /// Runs a program (found on PATH when not absolute) through RT.spawn: Foundation.Process leaks a
    /// descriptor into children, which the daemons then hold, so its waitUntilExit can hang.
    @discardableResult
    static func sh(_ argv: [String], env: [String: String]? = nil) throws -> Result {
        var args = argv
        if !args[0].hasPrefix("/") {
            let path = (env ?? ProcessInfo.processInfo.environment)["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin"
            guard let exe = (path.split(separator: ":").map { "\($0)/\(args[0])" } + ["/usr/sbin/\(args[0])", "/sbin/\(args[0])"])
                .first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
                throw TestFailure("\(args[0]) not found")
            }
            args[0] = exe
        }
        return try RT.spawn(args, env: env)
    }

    /// psql against the environment's cluster.
    func psql(_ sql: String, db: String = "maasdb") throws -> String {
        let r = try TestEnv.sh([TestEnv.pgbin + "/psql", "-X", "-qtA", "-v", "ON_ERROR_STOP=1", "-h", dir + "/pgsock", "-U", "postgres", "-d", db, "-c", sql])
        guard r.status == 0 else { throw TestFailure("psql failed: \(r.stderr)") }
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func isActive(_ unit: String) throws -> Bool {
        let r = try TestEnv.sh([dir + "/bin/systemctl", "is-active", unit], env: environment)
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "active"
    }

    func archives() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: backups)) ?? []).filter { $0.hasSuffix(".tar.gz") }.sorted()
    }

    func everythingInBackups() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: backups)) ?? []).sorted()
    }

    /// What a run may leave behind: dot folders and partial or spool files in the destination, the
    /// Btrfs snapshot folder, run journals.
    func leftovers(in destination: String? = nil) -> [String] {
        var found = ((try? FileManager.default.contentsOfDirectory(atPath: destination ?? backups)) ?? []).sorted()
            .filter { $0.hasPrefix(".") || $0.hasSuffix(".partial") || $0.contains(".spool") }
        if FileManager.default.fileExists(atPath: maas + "/.maas-snapshot-backup") { found.append("btrfs snapshot folder") }
        if let runs = try? FileManager.default.contentsOfDirectory(atPath: dir + "/state/runs"), !runs.isEmpty { found += runs }
        return found
    }

    /// The counter the stand-in regiond writes, as it is now.
    func liveCounter() throws -> Int { Int(try psql("SELECT n FROM msb_counter WHERE service = 'maas-regiond'")) ?? -1 }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// A throwaway PostgreSQL 15 cluster (initdb, pg_ctl, a unix socket in a temporary folder).
final class ScratchCluster {
    let dir: String
    var socket: String { dir + "/sock" }

    init(name: String) throws {
        dir = "/tmp/msb-cluster-\(name)-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir + "/sock", withIntermediateDirectories: true)
        _ = try TestEnv.sh(["chown", "-R", "postgres", dir])
        _ = try TestEnv.sh(["chmod", "755", dir])
        var r = try TestEnv.sh(["runuser", "-u", "postgres", "--", TestEnv.pgbin + "/initdb", "-D", dir + "/data", "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"])
        guard r.status == 0 else { throw TestFailure("initdb: \(r.stderr)") }
        r = try TestEnv.sh(["runuser", "-u", "postgres", "--", TestEnv.pgbin + "/pg_ctl", "-D", dir + "/data", "-l", dir + "/log", "-w",
                            "-o", "-c listen_addresses='' -c unix_socket_directories='\(dir)/sock' -c fsync=off", "start"])
        guard r.status == 0 else { throw TestFailure("pg_ctl start: \(r.stderr)") }
    }

    func psqlFile(_ file: String) throws -> TestEnv.Result {
        try TestEnv.sh([TestEnv.pgbin + "/psql", "-X", "-q", "-h", socket, "-U", "postgres", "-d", "postgres", "-f", file])
    }

    func psql(_ sql: String, db: String = "maasdb") throws -> String {
        let r = try TestEnv.sh([TestEnv.pgbin + "/psql", "-X", "-qtA", "-h", socket, "-U", "postgres", "-d", db, "-c", sql])
        guard r.status == 0 else { throw TestFailure("psql: \(r.stderr)") }
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func stop() {
        _ = try? TestEnv.sh(["runuser", "-u", "postgres", "--", TestEnv.pgbin + "/pg_ctl", "-D", dir + "/data", "-m", "immediate", "-w", "stop"])
        try? FileManager.default.removeItem(atPath: dir)
    }
}
