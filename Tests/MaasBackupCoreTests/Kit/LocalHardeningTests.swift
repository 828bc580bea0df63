import Foundation
import Testing
@testable import MaasBackupCore
import PathNames
#if canImport(Glibc)
import Glibc
#endif

/// A local user (the maas user, or anyone on the host) must not be able to turn the tool against
/// root or stop it from backing up: files it writes, its lock, its YAML, its journals, its
/// password file and its tree walk.
@Suite(.serialized) struct LocalHardeningTests {
    static func tempDir(_ name: String, mode: mode_t = 0o755) throws -> String {
        let d = "/tmp/msb-local-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        chmod(d, mode)
        return d
    }

    static func mode(_ path: String) -> mode_t {
        var st = stat()
        return lstat(path, &st) == 0 ? st.st_mode & 0o7777 : 0
    }

    /// Field 22 of /proc/<pid>/stat.
    static func startTime(_ pid: pid_t) -> UInt64? {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = s.lastIndex(of: ")") else { return nil }
        let f = s[s.index(after: close)...].split(separator: " ")
        return f.count > 19 ? UInt64(f[19]) : nil
    }

    static func result() -> BackupResult {
        BackupResult(status: "ok", archive: "/x", sizeBytes: 1, snapshotMethod: "btrfs", servicesStopped: [], downtimeMs: 1,
                     window: [], durationMs: 1, reason: "test", dryRun: false, plan: nil)
    }

    // MARK: 1. Files written by name

    @Test("a symlink planted at the metrics, stamp or sidecar temp name is never followed (the root-only file stays 0600)")
    func plantedSymlinkIsNotFollowed() throws {
        let dir = try Self.tempDir("atomic", mode: 0o1777)  // a textfile folder others can write to
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let victim = dir + "/root-only"
        try "secret\n".write(toFile: victim, atomically: false, encoding: .utf8)
        chmod(victim, 0o600)
        let metrics = dir + "/maas.prom"
        symlink(victim, metrics + ".tmp")
        Metrics.write(stateDir: dir + "/state", path: metrics, outcome: .success(Self.result()))
        #expect(Self.mode(victim) == 0o600, "the metrics write changed the mode of the file a planted symlink points to")
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "secret\n")
        #expect(Self.mode(metrics) == 0o644)
        #expect(try String(contentsOfFile: metrics, encoding: .utf8).contains("maas_snapshot_backup_archive_bytes 1"))

        // The user keeps planting the link at the temporary name while root writes the metrics:
        // a write that creates the temporary by name and chmods it by name follows it sooner or later.
        let rootOnly = try Self.tempDir("victim", mode: 0o700)
        defer { try? FileManager.default.removeItem(atPath: rootOnly) }
        let victim2 = rootOnly + "/shadow"
        try "root:secret\n".write(toFile: victim2, atomically: false, encoding: .utf8)
        chmod(victim2, 0o600)
        nonisolated(unsafe) var stop = false
        let planter = Thread {
            while !stop {
                unlink(metrics + ".tmp")
                symlink(victim2, metrics + ".tmp")
            }
        }
        planter.start()
        for _ in 0..<3000 where Self.mode(victim2) == 0o600 { Metrics.write(stateDir: dir + "/state", path: metrics, outcome: .success(Self.result())) }
        stop = true
        while !planter.isFinished { usleep(1000) }
        unlink(metrics + ".tmp")
        #expect(Self.mode(victim2) == 0o600, "a planted symlink made root's 0600 file 0644")
        #expect(try String(contentsOfFile: victim2, encoding: .utf8) == "root:secret\n")
        var lst = stat()
        #expect(lstat(metrics, &lst) == 0 && (lst.st_mode & S_IFMT) == S_IFREG, "the metrics file is not a plain file")

        // The stamp and the sidecar: a planted link to a world-readable file must not get the
        // archive's data or mode either.
        let archive = dir + "/maas-backup-x.tar.gz"
        try Data("archive".utf8).write(to: URL(fileURLWithPath: archive))
        let public_ = dir + "/public"
        try "public\n".write(toFile: public_, atomically: false, encoding: .utf8)
        chmod(public_, 0o644)
        symlink(public_, archive + ".verified.tmp")
        #expect(VerifiedStamp.write(archive: archive, sha256: "00", deep: false) != nil)
        #expect(Self.mode(public_) == 0o644)
        #expect(try String(contentsOfFile: public_, encoding: .utf8) == "public\n")
        #expect(Self.mode(archive + ".verified") == 0o600)
        var st = stat()
        #expect(lstat(archive + ".verified", &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG)
        // No temporary is left behind.
        let left = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".tmp-") }
        #expect(left.isEmpty, "\(left)")
    }

    @Test("the run journal and the restore journal are written 0600 through one writer and leave no temporary")
    func journalsAreWrittenAtomically() throws {
        let state = try Self.tempDir("journal")
        defer { try? FileManager.default.removeItem(atPath: state) }
        let j = try RunJournal(stateDir: state, runID: "r1", command: "backup")
        try j.update { $0.phase = "window" }
        #expect(Self.mode(j.path) == 0o600)
        let names = try FileManager.default.contentsOfDirectory(atPath: state + "/runs")
        #expect(names == ["r1.json"], "\(names)")
        let r = try RestoreJournal(stateDir: state, runID: "r2", command: "restore", archive: "/a")
        try r.update { $0.phase = "database" }
        #expect(Self.mode(r.path) == 0o600)
        #expect(try FileManager.default.contentsOfDirectory(atPath: state + "/restores") == ["r2.json"])
    }

    // MARK: 2. The lock

    @Test("the default lock is in a root-owned folder, not in world-writable /run/lock")
    func defaultLockIsInARootFolder() throws {
        let c = try Config.parse(yaml: "")
        #expect(c.lockFile == "/run/maas-snapshot-backup/lock")
    }

    @Test("a lock file another user made first, or a lock folder others may write to, is refused with exit 78 and nothing the user wrote")
    func userMadeLockIsRefused() throws {
        let shared = try Self.tempDir("lock", mode: 0o1777)  // like /run/lock
        defer { try? FileManager.default.removeItem(atPath: shared) }
        let path = shared + "/maas-snapshot-backup.lock"
        try "I own you\n".write(toFile: path, atomically: false, encoding: .utf8)
        chown(path, 65534, 65534)
        chmod(path, 0o644)
        // The user holds a flock on it.
        let fd = open(path, O_RDONLY)
        #expect(flock(fd, LOCK_EX) == 0)
        defer { close(fd) }
        do {
            _ = try RunLock(path: path, timeout: 0.2)
            Issue.record("a lock in a world-writable folder was used")
        } catch let e as BackupError {
            #expect(e.code == .config, "\(e)")
            #expect(!e.description.contains("I own you"))
        }
        // A root-owned folder, but the file belongs to someone else.
        let mine = try Self.tempDir("lock2", mode: 0o755)
        defer { try? FileManager.default.removeItem(atPath: mine) }
        try "x\n".write(toFile: mine + "/lock", atomically: false, encoding: .utf8)
        chown(mine + "/lock", 65534, 65534)
        do {
            _ = try RunLock(path: mine + "/lock", timeout: 0.2)
            Issue.record("a lock file owned by another user was used")
        } catch let e as BackupError {
            #expect(e.code == .config, "\(e)")
        }
        // A folder the tool makes itself is root's 0700, the file 0600; a second run waits, then 75 with the PID.
        let fresh = mine + "/sub/lock"
        let l = try RunLock(path: fresh, timeout: 0)
        #expect(Self.mode(mine + "/sub") == 0o700)
        #expect(Self.mode(fresh) == 0o600)
        do {
            _ = try RunLock(path: fresh, timeout: 0.2)
            Issue.record("the lock was taken twice")
        } catch let e as BackupError {
            #expect(e.code == .locked)
            #expect(e.message.contains("PID \(getpid())"), "\(e)")
        }
        l.release()
    }

    // MARK: 6. YAML aliases

    /// 400 bytes that expand to 10^9 nodes, with an alias as a mapping key.
    static let billionLaughs = """
        a: &a ["x","x","x","x","x","x","x","x","x","x"]
        b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]
        c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]
        d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]
        e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]
        f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]
        g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]
        h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g,*g]
        i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h,*h]
        ? *i
        : x

        """

    @Test("a billion-laughs config fails in well under a second with exit 78")
    func billionLaughsConfig() throws {
        let start = Date()
        do {
            _ = try Config.parse(yaml: Self.billionLaughs, source: "laughs.yaml")
            Issue.record("a config with aliases was accepted")
        } catch let e as BackupError {
            #expect(e.code == .config)
            #expect(e.message.contains("laughs.yaml"), "\(e)")
        }
        #expect(Date().timeIntervalSince(start) < 1)
    }

    @Test("a billion-laughs regiond.conf fails in well under a second with exit 78")
    func billionLaughsRegiondConf() throws {
        let root = try Self.tempDir("laughs")
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/etc/maas", withIntermediateDirectories: true)
        try Self.billionLaughs.write(toFile: root + "/etc/maas/regiond.conf", atomically: false, encoding: .utf8)
        let c = try Config.parse(yaml: "root: \(root)\n")
        let start = Date()
        do {
            _ = try PostgresTarget.resolve(c)
            Issue.record("a regiond.conf with aliases was accepted")
        } catch let e as BackupError {
            #expect(e.code == .config, "\(e)")
        }
        #expect(Date().timeIntervalSince(start) < 1)
    }

    // MARK: 7. Database names and the passfile

    @Test("the passfile names the exact host, port, user and databases, escaped, never *")
    func passfileIsNarrow() throws {
        let t = PostgresTarget(host: "/run/pg:a\\b", port: 5433, user: "maas", maasDatabase: "host=/tmp/evil dbname=maasdb", scope: .all,
                               password: "p:w", osUser: nil, binDir: nil)
        let dir = try Self.tempDir("pass", mode: 0o700)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = try #require(try t.writePassfile(in: dir))
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(lines == [
            "/run/pg\\:a\\\\b:5433:host=/tmp/evil dbname=maasdb:maas:p\\:w",
            "/run/pg\\:a\\\\b:5433:postgres:maas:p\\:w",
            "/run/pg\\:a\\\\b:5433:template1:maas:p\\:w",
        ])
        #expect(!lines.contains { $0.hasPrefix("*") })
        #expect(Self.mode(path) == 0o600)
    }

    // MARK: 4. Names as bytes in the manifest

    @Test("path_b64 keeps a name that is not UTF-8; it must match the readable path; old records still decode")
    func manifestNamesAsBytes() throws {
        let d = Manifest.decoder()
        let raw: [UInt8] = Array("var/lib/maas/caf".utf8) + [0xE9]
        let (readable, bytes) = PathBytes.split(raw)
        #expect(readable == "var/lib/maas/caf\\xE9" && bytes == raw)
        #expect(PathBytes.unbase64(PathBytes.base64(raw)) == raw)
        let rec = FileRecord(path: readable, pathB64: PathBytes.base64(raw), type: .file, size: 1, mode: "0644", uid: 0, gid: 0,
                             user: "root", group: "root", mtime: 1, sha256: "00", linkTarget: nil)
        let json = try Manifest.encoder().encode(rec)
        #expect(String(decoding: json, as: UTF8.self).contains("\"path_b64\""))
        let back = try d.decode(FileRecord.self, from: json)
        #expect(back == rec && back.rawPath == raw)
        #expect(back.key != "var/lib/maas/caf\\xE9", "a name written as the text \\xE9 must not collide with the byte")
        // A forged record whose bytes say something else than its readable path is refused.
        var forged = rec
        forged.pathB64 = PathBytes.base64(Array("../../etc/shadow".utf8) + [0xFF])
        #expect(throws: (any Error).self) { try d.decode(FileRecord.self, from: try Manifest.encoder().encode(forged)) }
        // A record of an older version (no *_b64 keys) decodes as before.
        let old = #"{"path":"var/lib/maas/a","type":"file","size":1,"mode":"0644","uid":0,"gid":0,"mtime":1,"sha256":"00"}"#
        #expect(try d.decode(FileRecord.self, from: Data(old.utf8)).key == "var/lib/maas/a")
    }

    // MARK: 8. Journals and PIDs; the password file

    @Test("a journal whose PID now belongs to another process (same program name, other start time) is a leftover")
    func reusedPIDIsNotTheRun() throws {
        let state = try Self.tempDir("pid")
        defer { try? FileManager.default.removeItem(atPath: state) }
        // A process whose command line names the tool, as any user could start.
        var pid: pid_t = 0
        let words: [String] = ["/bin/bash", "-c", "exec -a maas-snapshot-backup sleep 30"]
        let argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        #expect(posix_spawn(&pid, "/bin/bash", nil, nil, argv, environ) == 0)
        defer { kill(pid, SIGKILL); var s: Int32 = 0; waitpid(pid, &s, 0) }
        var start: UInt64?
        for _ in 0..<100 {
            if let c = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8), c.hasPrefix("maas-snapshot-backup") {
                start = Self.startTime(pid)
                break
            }
            usleep(20_000)
        }
        let started = try #require(start)
        let common = "\"command\":\"backup\",\"startedAt\":\"x\",\"phase\":\"window\",\"stoppedServices\":[],\"servicesRestarted\":false"
        for (dir, extra) in [("runs", ",\"snapshots\":[]"), ("restores", ",\"archive\":\"/a\",\"database\":\"untouched\",\"swaps\":[],\"filesFinal\":false")] {
            try FileManager.default.createDirectory(atPath: state + "/" + dir, withIntermediateDirectories: true)
            // Written by a run whose process started earlier: the PID was reused since.
            let old = "{\"runID\":\"old\",\"pid\":\(pid),\"pidStartTime\":\(started - 1),\(common)\(extra)}"
            try old.write(toFile: state + "/\(dir)/old.json", atomically: false, encoding: .utf8)
            // Written by the process itself: still running.
            let live = "{\"runID\":\"live\",\"pid\":\(pid),\"pidStartTime\":\(started),\(common)\(extra)}"
            try live.write(toFile: state + "/\(dir)/live.json", atomically: false, encoding: .utf8)
        }
        #expect(RunJournal.leftovers(stateDir: state).map(\.record.runID) == ["old"])
        #expect(RestoreJournal.leftovers(stateDir: state).map(\.record.runID) == ["old"])
    }

    @Test("a new journal records its process's start time")
    func journalRecordsStartTime() throws {
        let state = try Self.tempDir("pid2")
        defer { try? FileManager.default.removeItem(atPath: state) }
        let j = try RunJournal(stateDir: state, runID: "r", command: "backup")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: j.path))) as? [String: Any]
        #expect((json?["pidStartTime"] as? NSNumber)?.uint64Value == (try #require(Self.startTime(getpid()))))
    }

    @Test("a password_file readable by others, or not root's, is refused with exit 78 naming chmod 600 / chown root")
    func passwordFileModeAndOwner() throws {
        let root = try Self.tempDir("pw")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let pf = root + "/pw"
        try "secret\n".write(toFile: pf, atomically: false, encoding: .utf8)
        func resolve() throws -> BackupError? {
            let c = try Config.parse(yaml: "root: \(root)\ndatabase: {host: db.example, user: maas, password_file: \(pf)}\n")
            do { _ = try PostgresTarget.resolve(c); return nil } catch let e as BackupError { return e }
        }
        chmod(pf, 0o644)
        let loose = try #require(try resolve(), "a 0644 password file was read")
        #expect(loose.code == .config)
        #expect(loose.description.contains("chmod 600"), "\(loose)")
        chmod(pf, 0o600)
        chown(pf, 65534, 65534)
        let foreign = try #require(try resolve(), "a password file of another user was read")
        #expect(foreign.code == .config)
        #expect(foreign.description.contains("chown root"), "\(foreign)")
        chown(pf, 0, 0)
        #expect(try resolve() == nil)
    }
}
