import Foundation
import MaasBackupCore
import SystemPackage
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Off-host copies end to end (issue 16): the real tool, a TestEnv region, restic 0.14 and a
/// local-path repository (an SFTP port nobody listens on for the unreachable case).
@Suite("remote copies", .serialized,
       .enabled(if: TestEnv.skipReason == nil && ResticFixture.skipReason == nil, "\(TestEnv.skipReason ?? ResticFixture.skipReason ?? "")"),
       .sharedEnv("remote-copy"))
struct RemoteCopyTests {
    var env: TestEnv { get throws { try SharedEnv.get().env } }

    /// A config of `env` plus a `remote:` section (and `extra` top-level YAML, `retention` lines),
    /// with the state folder (the copy's state file) of `fx`: each test its own.
    func config(_ env: TestEnv, _ name: String, _ fx: ResticFixture, repository: String, passwordFile: String, copy: String = "after-backup",
                options: [String] = [], retention: String = "", extra: String = "") throws -> String {
        var text = try String(contentsOfFile: env.config, encoding: .utf8)
        text = text.replacingOccurrences(of: "state_dir: \(env.dir)/state\n", with: "state_dir: \(fx.dir)/state\n")
        text = text.replacingOccurrences(of: "retention:\n  after_backup: false", with: "retention:\n  after_backup: false\n" + retention)
        text += extra
        text += "remote:\n  repository: \(repository)\n  password_file: \(passwordFile)\n  copy: \(copy)\n"
        if !options.isEmpty { text += "  options:\n" + options.map { "    - \"\($0)\"\n" }.joined() }
        let path = env.dir + "/config-\(name).yaml"
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        return path
    }

    func backup(_ env: TestEnv, _ config: String, reason: String = "manual") throws -> (TestEnv.Result, [String: Any]) {
        let r = try env.tool(["backup", "--json", "--reason", reason], config: config)
        return (r, RT.json(r))
    }

    func copies(_ env: TestEnv, _ config: String) throws -> [[String: Any]] {
        let r = try env.tool(["list", "--remote", "--json"], config: config)
        #expect(r.status == 0, "list --remote: \(r.stderr)")
        return (RT.json(r)["copies"] as? [[String: Any]]) ?? []
    }

    static func name(_ archive: String) -> String { String((archive as NSString).lastPathComponent.dropLast(7)) }

    @Test("copy after backup: list --remote shows it with its tags; a second unchanged backup adds under 10%; verify --remote; status and metrics")
    func copyAfterBackup() async throws {
        let env = try env
        let fx = try ResticFixture("copy")
        defer { fx.cleanup() }
        let repoPath = fx.dir + "/repo"
        // Unchanged data: the stand-in daemons (which rewrite a counter and a heartbeat on every
        // tick) are stopped for this test, and 96 MiB of image-storage stand for the images of
        // MAAS 3.5+. What still changes between two backups: pg_dump's random \restrict keys at the
        // start and end of each database's dump, and the manifest. Each costs a restic chunk
        // (1 MiB on average, up to 8 MiB: the test tree's 3 MiB of periodic text has no chunk
        // boundary): 1.8 to 3.9 MB per copy in five runs here (restic draws its chunker per
        // repository), whatever the size of the rest; 96 MiB keep that well under 10%.
        _ = try env.systemctl(["stop", "maas-regiond", "maas-rackd"])
        defer { _ = try? env.systemctl(["start", "maas-regiond", "maas-rackd"]) }
        let blob = env.maas + "/image-storage/blob-dedup"
        _ = try TestEnv.sh(["dd", "if=/dev/urandom", "of=" + blob, "bs=1M", "count=96", "status=none"])
        defer { unlink(blob) }
        let metrics = env.dir + "/metrics-copy.prom"
        let cfg = try config(env, "copy", fx, repository: repoPath, passwordFile: fx.passwordFile, extra: "metrics_textfile: \(metrics)\n")

        let i = try env.tool(["remote-init", "--json"], config: cfg)
        #expect(i.status == 0, "remote-init: \(i.stderr)")
        #expect(RT.json(i)["created"] as? Bool == true)
        #expect(RT.json(try env.tool(["remote-init", "--json"], config: cfg))["created"] as? Bool == false, "a second init is success")

        let (r1, j1) = try backup(env, cfg)
        #expect(r1.status == 0, "backup: \(r1.stderr)")
        let a1 = try #require(j1["archive"] as? String)
        let c1 = try #require(j1["copy"] as? [String: Any])
        #expect(c1["status"] as? String == "ok")
        #expect(((c1["copied"] as? [[String: Any]]) ?? []).map { $0["archive"] as? String } == [Self.name(a1)])
        let repo = try fx.repository(repoPath)
        let first = try await repo.stats()

        let list = try copies(env, cfg)
        #expect(list.count == 1)
        let tags = Set((list.first?["tags"] as? [String]) ?? [])
        #expect(tags.isSuperset(of: ["maas-snapshot-backup", "manual", "archive=\(Self.name(a1))"]), "\(tags)")
        #expect(list.first?["archive"] as? String == Self.name(a1))
        let human = try env.tool(["list", "--remote"], config: cfg)
        #expect(human.stdout.contains(Self.name(a1)) && human.stdout.contains("SNAPSHOT"), "\(human.stdout)")

        // The next backup of the same data adds little to the repository.
        let (r2, j2) = try backup(env, cfg)
        #expect(r2.status == 0, "backup: \(r2.stderr)")
        let a2 = try #require(j2["archive"] as? String)
        let second = try await repo.stats()
        let growth = second.totalSize - first.totalSize
        print("repository after the first copy: \(first.totalSize) bytes; the second copy of unchanged data added \(growth) bytes (\(String(format: "%.2f", Double(growth) * 100 / Double(max(first.totalSize, 1))))%)")
        #expect(first.totalSize > 1 << 20, "the first copy stored the data")
        #expect(growth < first.totalSize / 10, "the second copy adds under 10%: \(growth) of \(first.totalSize)")
        #expect(try copies(env, cfg).compactMap { $0["archive"] as? String } == [Self.name(a2), Self.name(a1)], "newest first")

        // restic dump of the copy is the archive's tar, byte for byte.
        let gunzipped = try await fx.gunzip(a2)
        let snap = try #require(try await repo.snapshots(tags: ["archive=\(Self.name(a2))"]).first)
        #expect(try ResticFixture.sameBytes(try await fx.dump(repo, snap.id, Self.name(a2)), gunzipped))

        let v = try env.tool(["verify", "--remote", "--read-data-subset", "10%", "--json"], config: cfg)
        #expect(v.status == 0, "verify --remote: \(v.stderr)")
        #expect(RT.json(v)["status"] as? String == "ok" && RT.json(v)["copies"] as? Int == 2)
        // What the weekly verify unit runs: the newest archive, then the repository on a sample.
        let weekly = try env.tool(["verify", "latest", "--with-remote", "--json"], config: cfg)
        #expect(weekly.status == 0, "verify latest --with-remote: \(weekly.stderr)")
        let wj = RT.json(weekly)
        #expect(wj["status"] as? String == "ok" && wj["archive"] as? String == a2, "\(weekly.stdout)")
        #expect((wj["remote"] as? [String: Any])?["copies"] as? Int == 2 && (wj["remote"] as? [String: Any])?["read_data_subset"] as? String == "5%", "\(weekly.stdout)")

        let s = RT.json(try env.tool(["status", "--json"], config: cfg))
        let last = s["last_copy"] as? [String: Any]
        #expect(last?["status"] as? String == "ok" && (last?["archives"] as? [String]) == [Self.name(a2)], "\(s["last_copy"] ?? "none")")
        let prom = (try? String(contentsOfFile: metrics, encoding: .utf8)) ?? ""
        #expect(prom.contains("maas_snapshot_backup_last_copy_success 1\n"), "\(prom)")
        #expect(prom.contains("maas_snapshot_backup_last_run_success 1\n"), "the backup's gauges are still there")
        #expect(ResticFixture.locks(repoPath).isEmpty)
        #expect(!r1.stderr.contains(ResticFixture.password) && !r2.stderr.contains(ResticFixture.password))
    }

    @Test("an unreachable or wrong-password repository keeps the local backup, exits 3 with one line; the next run copies what failed")
    func failedCopyIsRetried() async throws {
        let env = try env
        let fx = try ResticFixture("fail")
        defer { fx.cleanup() }
        let repoPath = fx.dir + "/repo"
        try await fx.repository(repoPath).initialize()
        let good = try config(env, "fail-good", fx, repository: repoPath, passwordFile: fx.passwordFile)

        // Unreachable: SFTP to a port nobody listens on.
        let port = ResticFixture.freePort(from: 20000 + Int(getpid()) % 10000)
        let unreachable = try config(env, "fail-unreachable", fx, repository: "sftp:root@127.0.0.1:/srv/none", passwordFile: fx.passwordFile,
                                     options: ["sftp.command=ssh -o BatchMode=yes -p \(port) root@127.0.0.1 -s sftp"])
        let t0 = Date()
        let (r1, j1) = try backup(env, unreachable)
        print("backup with an unreachable repository: exit \(r1.status) in \(String(format: "%.1f", Date().timeIntervalSince(t0))) s")
        #expect(r1.status == 3, "exit \(r1.status): \(r1.stderr)")
        let a1 = try #require(j1["archive"] as? String)
        #expect(FileManager.default.fileExists(atPath: a1), "the local backup is kept")
        #expect((j1["copy"] as? [String: Any])?["status"] as? String == "failed")
        let lines1 = r1.stderr.split(separator: "\n")
        #expect(lines1.count == 1 && lines1[0].contains("unreachable") && lines1[0].contains(Self.name(a1)), "\(r1.stderr)")

        // Wrong password.
        let wrong = try config(env, "fail-wrong", fx, repository: repoPath, passwordFile: fx.wrongPasswordFile)
        let (r2, j2) = try backup(env, wrong)
        #expect(r2.status == 3, "exit \(r2.status): \(r2.stderr)")
        let a2 = try #require(j2["archive"] as? String)
        #expect(FileManager.default.fileExists(atPath: a2))
        let lines2 = r2.stderr.split(separator: "\n")
        #expect(lines2.count == 1 && lines2[0].contains("wrong password") && lines2[0].contains("remote.password_file"), "\(r2.stderr)")
        #expect(!r2.stderr.contains(ResticFixture.password) && !r2.stderr.contains("not the password"))
        // A missing password file: a config error, caught before restic runs; the backup stays too.
        let missing = try config(env, "fail-missing", fx, repository: repoPath, passwordFile: fx.dir + "/secrets/absent")
        let (r3, j3) = try backup(env, missing)
        #expect(r3.status == 3, "exit \(r3.status): \(r3.stderr)")
        let a3 = try #require(j3["archive"] as? String)
        let lines3 = r3.stderr.split(separator: "\n")
        #expect(lines3.count == 1 && lines3[0].contains("remote.password_file") && lines3[0].contains(Self.name(a3)), "\(r3.stderr)")
        let st = RT.json(try env.tool(["status", "--json"], config: good))
        #expect((st["last_copy"] as? [String: Any])?["status"] as? String == "failed")
        #expect(Set((st["copy_pending"] as? [String]) ?? []) == [Self.name(a1), Self.name(a2), Self.name(a3)], "\(st["copy_pending"] ?? "none")")

        // The next run (a plain `copy`) copies the three that failed (the newest among them), oldest first.
        let c = try env.tool(["copy", "--json"], config: good)
        #expect(c.status == 0, "copy: \(c.stderr)")
        let copied = ((RT.json(c)["copied"] as? [[String: Any]]) ?? []).compactMap { $0["archive"] as? String }
        #expect(copied == [Self.name(a1), Self.name(a2), Self.name(a3)], "oldest first: \(copied)")
        #expect(Set(try copies(env, good).compactMap { $0["archive"] as? String }) == [Self.name(a1), Self.name(a2), Self.name(a3)])
        let again = try env.tool(["copy", "--json"], config: good)
        #expect(again.status == 0 && ((RT.json(again)["copied"] as? [Any]) ?? [1]).isEmpty, "nothing twice: \(again.stdout)")
        #expect((RT.json(try env.tool(["status", "--json"], config: good))["copy_pending"] as? [String]) == [])
        // `copy` alone exits with the error's own code: 69 for an unreachable repository.
        let alone = try env.tool(["copy"], config: unreachable)
        #expect(alone.status == 69, "exit \(alone.status): \(alone.stderr)")
    }

    /// PIDs of the processes whose parent is `parent` and whose name is `comm`.
    static func children(of parent: pid_t, named comm: String) -> [pid_t] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry -> pid_t? in
            guard let pid = pid_t(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { return nil }
            let rest = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
            guard String(stat[stat.index(after: open)..<close]) == comm, rest.count > 2, pid_t(rest[1]) == parent else { return nil }
            return pid
        }
    }

    @Test("a copy cut off by SIGKILL (restic then saves part of the tar) counts as not copied: the next run copies it again")
    func killedCopyIsCopiedAgain() async throws {
        let env = try env
        let fx = try ResticFixture("kill")
        defer { fx.cleanup() }
        let repoPath = fx.dir + "/repo"
        let repo = try fx.repository(repoPath)
        try await repo.initialize()
        let cfg = try config(env, "kill", fx, repository: repoPath, passwordFile: fx.passwordFile, copy: "off")
        // An archive big enough that its copy takes a few seconds.
        let blob = env.maas + "/image-storage/blob-kill"
        _ = try TestEnv.sh(["dd", "if=/dev/urandom", "of=" + blob, "bs=1M", "count=96", "status=none"])
        let (b, j) = try backup(env, cfg)
        unlink(blob)
        #expect(b.status == 0, "backup: \(b.stderr)")
        let archive = try #require(j["archive"] as? String)
        let name = Self.name(archive)

        let pid = try RT.spawnDetached([TestEnv.binary, "copy", archive, "--config", cfg], env: env.environment)
        var resticPID: pid_t?
        for _ in 0..<200 where resticPID == nil {
            usleep(25_000)
            // restic backup (restic snapshots runs first).
            resticPID = Self.children(of: pid, named: "restic").first { p in
                ((try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(p)/cmdline"))).map { String(decoding: $0, as: UTF8.self) } ?? "").contains("--stdin")
            }
        }
        try #require(resticPID != nil, "restic backup did not start")
        usleep(400_000)
        #expect(kill(pid, SIGKILL) == 0)
        var st: Int32 = 0
        waitpid(pid, &st, 0)
        // restic, left alone, sees the end of its input and saves what it got.
        for _ in 0..<200 where kill(resticPID!, 0) == 0 { usleep(50_000) }
        let cut = try await repo.snapshots(tags: ["archive=\(name)"])
        let whole = try await fx.gunzip(archive)
        if let c = cut.first {
            let part = try await fx.dump(repo, c.id, name)
            print("after SIGKILL of the copy, restic saved a snapshot of \(ResticFixture.size(part)) of the tar's \(ResticFixture.size(whole)) bytes")
        } else {
            print("after SIGKILL of the copy, restic saved nothing")
        }
        let status = RT.json(try env.tool(["status", "--json"], config: cfg))
        #expect(((status["copy_pending"] as? [String]) ?? []).contains(name), "the cut-off copy is pending: \(status["copy_pending"] ?? "none")")

        let again = try env.tool(["copy", "--json"], config: cfg)
        #expect(again.status == 0, "copy: \(again.stderr)")
        let copied = ((RT.json(again)["copied"] as? [[String: Any]]) ?? []).compactMap { $0["archive"] as? String }
        #expect(copied == [name], "copied again: \(copied)")
        let id = try #require((RT.json(again)["copied"] as? [[String: Any]])?.first?["snapshot_id"] as? String)
        #expect(try ResticFixture.sameBytes(try await fx.dump(repo, id, name), whole), "the new copy is whole")
        let left = try await repo.snapshots(tags: ["archive=\(name)"])
        #expect(left.map(\.id) == [id].compactMap { i in left.first { $0.id.hasPrefix(i) }?.id } && left.count == 1,
                "the cut-off copy is forgotten: \(left.map(\.shortID))")
        let third = try env.tool(["copy", "--json"], config: cfg)
        #expect(((RT.json(third)["copied"] as? [Any]) ?? [1]).isEmpty && (RT.json(third)["already_copied"] as? [String]) == [name],
                "now it counts as copied: \(third.stdout)")
    }

    @Test("a pre-upgrade backup's copy runs detached after the backup returns; status shows its result")
    func preUpgradeCopyIsDetached() async throws {
        let env = try env
        let fx = try ResticFixture("pre")
        defer { fx.cleanup() }
        let repoPath = fx.dir + "/repo"
        try await fx.repository(repoPath).initialize()
        let cfg = try config(env, "pre", fx, repository: repoPath, passwordFile: fx.passwordFile)
        let (r, j) = try backup(env, cfg, reason: "pre-upgrade: maas 3.4 to 3.5")
        #expect(r.status == 0, "backup: \(r.stderr)")
        let a = try #require(j["archive"] as? String)
        let c = j["copy"] as? [String: Any]
        #expect(c?["status"] as? String == "scheduled", "\(c ?? [:])")
        #expect((c?["scheduled_as"] as? String)?.contains("setsid") == true, "no systemd here: a detached process")
        var last: [String: Any]?
        for _ in 0..<300 {
            last = RT.json(try env.tool(["status", "--json"], config: cfg))["last_copy"] as? [String: Any]
            if last?["status"] as? String != "scheduled" { break }
            usleep(100_000)
        }
        #expect(last?["status"] as? String == "ok", "\(last ?? [:])")
        let list = try copies(env, cfg)
        #expect(list.first?["archive"] as? String == Self.name(a))
        #expect(((list.first?["tags"] as? [String]) ?? []).contains("pre-upgrade"))
    }

    @Test("prune removes by retention on both sides and says what went")
    func pruneBothSides() async throws {
        let env = try env
        let fx = try ResticFixture("prune")
        defer { fx.cleanup() }
        let repoPath = fx.dir + "/repo"
        try await fx.repository(repoPath).initialize()
        let cfg = try config(env, "prune", fx, repository: repoPath, passwordFile: fx.passwordFile,
                             retention: "  keep: 1\n  keep_pre_upgrade: 0\n  max_age_days: 0\n")
        var made: [String] = []
        for _ in 0..<2 {
            let (r, j) = try backup(env, cfg)
            #expect(r.status == 0, "backup: \(r.stderr)")
            made.append(try #require(j["archive"] as? String))
            sleep(1)  // archive names have seconds
        }
        #expect(try copies(env, cfg).count == 2)
        let p = try env.tool(["prune", "--json"], config: cfg)
        #expect(p.status == 0, "prune: \(p.stderr)")
        let j = RT.json(p)
        let localRemoved = ((j["removed"] as? [[String: Any]]) ?? []).compactMap { $0["archive"] as? String }
        #expect(localRemoved.contains(made[0]), "\(localRemoved)")
        #expect(!FileManager.default.fileExists(atPath: made[0]) && FileManager.default.fileExists(atPath: made[1]))
        let remote = try #require(j["remote"] as? [String: Any])
        #expect(((remote["removed"] as? [[String: Any]]) ?? []).compactMap { $0["archive"] as? String } == [Self.name(made[0])])
        #expect(try copies(env, cfg).compactMap { $0["archive"] as? String } == [Self.name(made[1])])
        #expect(try await fx.repository(repoPath).snapshots(tags: []).count == 1, "forgotten in restic too")
        let h = try env.tool(["prune", "--dry-run"], config: cfg)
        #expect(h.status == 0 && h.stdout.contains("Remote \(repoPath)"), "\(h.stdout + h.stderr)")
    }

    /// Stores `archive` with a planted file (manifest rewritten to fit, so unsigned) in the repository as
    /// another host's copy made later (restic's host other-region): what `latest` must not take. Returns the snapshot's id.
    func plantOtherHostCopy(_ env: TestEnv, _ fx: ResticFixture, repository: String, archive: String) async throws -> String {
        var members = try RT.readMembers(archive)
        var h = try #require(members.first { $0.header.path == "etc/maas/regiond.conf" }).header
        h.path = "etc/maas/planted.conf"
        let data = Array("planted by another host\n".utf8)
        h.size = Int64(data.count)
        let i = try #require(members.firstIndex { $0.header.path == "dump.sql" })
        members.insert(RT.Member(header: h, data: data), at: i)
        var m = try RT.manifest(in: members)
        m.files.append(FileRecord(path: h.path, type: .file, size: h.size, mode: String(format: "%04o", h.permissions), uid: h.uid, gid: h.gid,
                                  user: h.uname, group: h.gname, mtime: h.mtime, sha256: try RT.sha256Hex(data), linkTarget: nil))
        try RT.replaceManifest(&members, m, sign: false)
        let gz = fx.dir + "/archives/" + (archive as NSString).lastPathComponent
        try RT.writeArchive(members, to: gz)
        let tar = try await fx.gunzip(gz)
        let name = Self.name(archive)
        // Stored after this host's copy, so it is the newest in the repository.
        let fd = try FileDescriptor.open(tar, .readOnly)
        _ = try await fx.repository(repository).backup(fromTarStream: fd, name: name, tags: [ResticCopier.toolTag, "manual", "archive=" + name],
                                                       host: "other-region")
        let other = try #require(try await fx.repository(repository).snapshots(tags: []).first { $0.hostname == "other-region" })
        return other.id
    }

    @Test("restore --from-remote latest onto an empty root and an empty PostgreSQL cluster equals the original")
    func freshMachineRestore() async throws {
        let env = try env
        let fx = try ResticFixture("fresh")
        defer { fx.cleanup() }
        let repoPath = fx.dir + "/repo"
        try await fx.repository(repoPath).initialize()
        let cfg = try config(env, "fresh-source", fx, repository: repoPath, passwordFile: fx.passwordFile)
        let (r, j) = try backup(env, cfg)
        #expect(r.status == 0, "backup: \(r.stderr)")
        let archive = try #require(j["archive"] as? String)
        let m = try RT.manifest(sidecarOf: archive)

        // The fresh machine: an empty cluster, an empty root, the config and the password only.
        let cluster = try ScratchCluster(name: "fresh")
        defer { cluster.stop() }
        let fresh = fx.dir + "/fresh"
        for d in [fresh + "/root", fresh + "/svc", fresh + "/secrets"] {
            try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        chmod(fx.dir, 0o755); chmod(fresh, 0o755); chmod(fresh + "/root", 0o755)
        let password = fresh + "/secrets/restic-password"
        try FileManager.default.copyItem(atPath: fx.passwordFile, toPath: password)
        let freshConfig = fresh + "/config.yaml"
        try """
            root: \(fresh)/root
            destination: \(fresh)/backups
            database:
              host: \(cluster.socket)
              user: postgres
              name: maasdb
              os_user: root
            lock_file: \(fresh)/lock
            state_dir: \(fresh)/state
            services: [maas-regiond, maas-rackd, maas-dhcpd]
            signing_key: \(fresh)/secrets/signing-key
            remote:
              repository: \(repoPath)
              password_file: \(password)

            """.write(toFile: freshConfig, atomically: false, encoding: .utf8)
        #expect(try cluster.psql("SELECT count(*) FROM pg_database WHERE datname = 'maasdb'", db: "postgres") == "0")

        let freshEnv = env.environment.merging(["FAKE_SYSTEMCTL_DIR": fresh + "/svc"]) { $1 }
        let leftInDestination = { ((try? FileManager.default.contentsOfDirectory(atPath: fresh + "/backups")) ?? []).filter { $0.hasPrefix(".") || $0.hasSuffix(".tar") || $0.hasSuffix(".tar.gz") } }

        // Issue 23: another host's copy stored later is not `latest`, and a copy is restored only
        // when signed by a key this machine trusts (the lost host's public key in trusted_keys).
        let otherID = try await plantOtherHostCopy(env, fx, repository: repoPath, archive: archive)
        let sourceKey = RT.json(try env.tool(["key", "show", "--json"], config: cfg))
        let keyID = try #require(sourceKey["key_id"] as? String), publicKey = try #require(sourceKey["public_key"] as? String)
        let untrusted = try TestEnv.sh([TestEnv.binary, "restore", "--from-remote", "latest", "--yes", "--config", freshConfig], env: freshEnv)
        #expect(untrusted.status == 65 && untrusted.stderr.contains("key \(keyID)") && untrusted.stderr.contains("trusted_keys"),
                "exit \(untrusted.status): \(untrusted.stderr)")
        #expect(!FileManager.default.fileExists(atPath: fresh + "/root/etc/maas/planted.conf"), "the other host's copy was restored")
        #expect(leftInDestination().isEmpty, "\(leftInDestination())")
        // No room in the destination for the copy: refused before `restic dump`, in one line.
        let small = fresh + "/small"
        try FileManager.default.createDirectory(atPath: small, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        #expect(try TestEnv.sh(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", small]).status == 0)
        defer { _ = try? TestEnv.sh(["umount", small]) }
        let smallConfig = fresh + "/config-small.yaml"
        try (try String(contentsOfFile: freshConfig, encoding: .utf8)).replacingOccurrences(of: "destination: \(fresh)/backups\n", with: "destination: \(small)\n")
            .write(toFile: smallConfig, atomically: false, encoding: .utf8)
        let full = try TestEnv.sh([TestEnv.binary, "restore", "--from-remote", "latest", "--yes", "--config", smallConfig], env: freshEnv)
        #expect(full.status == 73 && full.stderr.contains("free") && full.stderr.contains("needs"), "exit \(full.status): \(full.stderr)")
        #expect(leftInDestination().isEmpty && ((try? FileManager.default.contentsOfDirectory(atPath: small)) ?? ["?"]).isEmpty)
        try (try String(contentsOfFile: freshConfig, encoding: .utf8) + "trusted_keys:\n  - \(publicKey)\n")
            .write(toFile: freshConfig, atomically: false, encoding: .utf8)
        // The other host's copy by its id: unsigned, refused even with --allow-unsigned.
        let byID = try TestEnv.sh([TestEnv.binary, "restore", "--from-remote", String(otherID.prefix(8)), "--yes", "--allow-unsigned", "--config", freshConfig], env: freshEnv)
        #expect(byID.status == 65 && byID.stderr.contains("is not signed"), "exit \(byID.status): \(byID.stderr)")
        #expect(!FileManager.default.fileExists(atPath: fresh + "/root/etc/maas/planted.conf"), "the other host's copy was restored")

        // A restore that fails late (files extracted, database swapped in) leaves the machine as it was: empty.
        let failed = try TestEnv.sh([TestEnv.binary, "restore", "--from-remote", "latest", "--yes", "--config", freshConfig],
                                    env: freshEnv.merging(["MSB_TEST_FAIL_AFTER": "restore-keep"]) { $1 })
        #expect(failed.status == 1, "exit \(failed.status): \(failed.stderr)")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: fresh + "/root")) ?? ["?"]).allSatisfy { n in
            ((try? FileManager.default.subpathsOfDirectory(atPath: fresh + "/root/" + n)) ?? []).allSatisfy { !$0.hasPrefix("maas") && !$0.contains("/maas") }
        }, "\((try? FileManager.default.subpathsOfDirectory(atPath: fresh + "/root")) ?? [])")
        #expect(try cluster.psql("SELECT count(*) FROM pg_database WHERE datname = 'maasdb'", db: "postgres") == "0", "no MAAS database after the failure")
        #expect(leftInDestination().isEmpty, "the fetched file is removed after a failure too: \(leftInDestination())")
        // The failed copy of the database, if kept, is not in the way of the next restore.
        for d in try cluster.psql("SELECT datname FROM pg_database WHERE datname LIKE 'maasdb_%'", db: "postgres").split(separator: "\n") {
            _ = try cluster.psql("DROP DATABASE \"\(d)\"", db: "postgres")
        }

        let t0 = Date()
        let res = try TestEnv.sh([TestEnv.binary, "restore", "--from-remote", "latest", "--yes", "--json", "--config", freshConfig], env: freshEnv)
        print("restore --from-remote latest onto an empty machine: exit \(res.status) in \(String(format: "%.1f", Date().timeIntervalSince(t0))) s")
        #expect(res.status == 0, "restore --from-remote: \(res.stderr)")
        let rj = RT.json(res)
        #expect(rj["status"] as? String == "ok")
        #expect((rj["from_remote"] as? [String: Any])?["archive"] as? String == Self.name(archive))
        #expect((rj["from_remote"] as? [String: Any])?["snapshot_id"] as? String != otherID, "latest took the other host's later copy")
        #expect(!FileManager.default.fileExists(atPath: fresh + "/root/etc/maas/planted.conf"), "the other host's copy was restored")
        #expect(((rj["previous_databases"] as? [Any]) ?? [1]).isEmpty && ((rj["previous_files"] as? [Any]) ?? [1]).isEmpty,
                "nothing existed to keep aside")
        // The fetched copy is gone: nothing but what restore itself leaves in the destination.
        #expect(leftInDestination().isEmpty, "\(leftInDestination())")

        // Files: every archived entry with its bytes, mode and owner.
        var checked = 0
        for f in m.files where !RT.volatile.contains(f.path) {
            let live = fresh + "/root/" + f.path
            var st = stat()
            guard lstat(live, &st) == 0 else { Issue.record("\(f.path) is missing after the restore"); continue }
            #expect(String(format: "%04o", UInt32(st.st_mode & 0o7777)) == f.mode, "\(f.path) mode")
            #expect(Int64(st.st_uid) == f.uid && Int64(st.st_gid) == f.gid, "\(f.path) owner")
            if f.type == .file { #expect(RT.sha256(live) == f.sha256, "\(f.path) content") }
            checked += 1
        }
        #expect(checked > 10, "\(checked) entries compared")
        // Rows: every table's count as the manifest recorded it.
        let counts = try #require(m.database.rowCounts["maasdb"])
        let sql = counts.keys.sorted().map { "SELECT '\($0)', count(*) FROM \($0)" }.joined(separator: " UNION ALL ")
        let got = Dictionary(uniqueKeysWithValues: try cluster.psql(sql).split(separator: "\n").map { line -> (String, Int64) in
            let p = line.split(separator: "|"); return (String(p[0]), Int64(p[1]) ?? -1)
        })
        #expect(got == counts, "row counts differ")
        print("fresh-machine restore: \(checked) files and folders and \(counts.count) tables (\(counts.values.reduce(0, +)) rows) match the original")
    }
}
