import Foundation
import MaasBackupCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `restore`, `rollback`'s host part, `status` and `recover` on a real PostgreSQL 15 cluster and a
/// Btrfs /var/lib/maas (a mount point) with a plain /etc/maas, and daemons that keep writing.
@Suite("restore", .serialized, .enabled(if: TestEnv.skipReason == nil, "\(TestEnv.skipReason ?? "")"), .sharedEnv("restore"))
struct RestoreIntegrationTests {
    static let steps = ["restore-verify", "restore-db-create", "restore-db-load", "restore-db-check", "restore-extract", "restore-stop",
                        "restore-database", "restore-aside", "restore-files", "restore-keep", "restore-start"]
    /// The steps before MAAS is stopped: the dump is loaded and checked, and the files extracted
    /// into staging folders, while it runs (issue 25).
    static let beforeStop: Set<String> = ["restore-verify", "restore-db-create", "restore-db-load", "restore-db-check", "restore-extract"]
    /// Steps before the swap: the live database was never touched.
    static let beforeSwap: Set<String> = beforeStop.union(["restore-stop"])

    var shared: SharedEnv { get throws { try SharedEnv.get() } }

    func eventCount(_ env: TestEnv) throws -> Int { Int(try env.psql("SELECT count(*) FROM maasserver_event")) ?? -1 }

    func journals(_ env: TestEnv) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: env.dir + "/state/restores")) ?? []
    }

    func servicesActive(_ env: TestEnv) throws -> Bool {
        try env.isActive("maas-regiond") && env.isActive("maas-rackd")
    }

    /// Changes files and rows so that a restore (or its undo) can be told apart.
    func mutate(_ env: TestEnv, tag: String) throws {
        try "tag \(tag)\n".write(toFile: env.root + "/etc/maas/local-\(tag).conf", atomically: false, encoding: .utf8)
        try "rackd: changed \(tag)\n".write(toFile: env.root + "/etc/maas/rackd.conf", atomically: false, encoding: .utf8)
        try? FileManager.default.removeItem(atPath: env.maas + "/image-storage/blob-random")
        chmod(env.maas + "/certificates/maas.crt", 0o644)
        chown(env.root + "/etc/maas/regiond.conf", 65534, 65534)
        try "\(UUID().uuidString)\n".write(toFile: env.maas + "/secret", atomically: false, encoding: .utf8)
        try "new image \(tag)\n".write(toFile: env.maas + "/boot-resources/current/image-\(tag)", atomically: false, encoding: .utf8)
        _ = try env.psql("DELETE FROM maasserver_event WHERE id % 3 = 0")
    }

    @Test("a restore brings back the archive's files (bytes, owners, modes), rows and schema head, and keeps the previous files aside")
    func roundTrip() throws {
        let shared = try shared
        let env = shared.env
        let archive = try shared.baselineArchive()
        let m = try RT.manifest(sidecarOf: archive)
        let members = try RT.readMembers(archive)
        let archivedSecret = String(decoding: try #require(members.first { $0.header.path == "var/lib/maas/secret" }).data, as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let archivedCounter = Int(String(decoding: try #require(members.first { $0.header.path == "var/lib/maas/counter" }).data, as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        try mutate(env, tag: "roundtrip")
        let wantEvents = Int(try #require(m.database.rowCounts["maasdb"]?["public.maasserver_event"]))
        #expect(try eventCount(env) != wantEvents)

        let r = try RT.tool(env, ["restore", archive, "--yes", "--json"])
        #expect(r.status == 0, "restore failed: \(r.stderr)")
        let j = RT.json(r)
        #expect(j["status"] as? String == "ok")
        #expect(((j["database"] as? [String: Any])?["problems"] as? [Any])?.isEmpty == true)
        #expect((j["services_started"] as? [String])?.sorted() == ["maas-rackd", "maas-regiond"])
        #expect(j["rack_register_command"] as? String == "maas-rack register --url http://127.0.0.1:5240/MAAS --secret \(archivedSecret)")
        #expect(!r.stderr.contains(archivedSecret), "the secret leaked into the log")

        // Every archived entry is back exactly: type, bytes, mode, owner, link target.
        for f in m.files where !RT.volatile.contains(f.path) {
            let live = env.root + "/" + f.path
            var st = stat()
            guard lstat(live, &st) == 0 else { Issue.record("\(f.path) is missing after the restore"); continue }
            #expect(String(format: "%04o", UInt32(st.st_mode & 0o7777)) == f.mode, "\(f.path) mode")
            #expect(Int64(st.st_uid) == f.uid && Int64(st.st_gid) == f.gid, "\(f.path) owner")
            switch f.type {
            case .file: #expect(RT.sha256(live) == f.sha256, "\(f.path) content")
            case .symlink: #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: live)) == f.linkTarget, "\(f.path) target")
            case .hardlink:
                var t = stat()
                lstat(env.root + "/" + (f.linkTarget ?? ""), &t)
                #expect(t.st_ino == st.st_ino, "\(f.path) is not a hard link of \(f.linkTarget ?? "")")
            case .directory: #expect((st.st_mode & S_IFMT) == S_IFDIR, "\(f.path) type")
            default: break
            }
        }
        // Nothing that the archive does not hold, but the carried-over boot-resources.
        let names = Set(m.files.map(\.path))
        for path in RT.fingerprint(root: env.root).keys.sorted() where !names.contains(path) && !RT.volatile.contains(path) {
            #expect(path.hasPrefix("var/lib/maas/boot-resources"), "\(path) should not be there after the restore")
        }
        #expect(FileManager.default.fileExists(atPath: env.maas + "/boot-resources/current/squashfs"))
        #expect(FileManager.default.fileExists(atPath: env.maas + "/boot-resources/current/image-roundtrip"))

        // The previous files are kept aside, on the same filesystems, never deleted.
        let aside = RT.asideFolders(root: env.root)
        #expect(aside.count == 2, "\(aside)")
        #expect(RT.stagingFolders(root: env.root).isEmpty, "a staging folder is left: \(RT.stagingFolders(root: env.root))")
        let etcAside = try #require(aside.first { $0.contains("/etc/maas.pre-restore-") })
        #expect(FileManager.default.fileExists(atPath: etcAside + "/local-roundtrip.conf"))
        let libAside = try #require(aside.first { $0.contains("/.maas-snapshot-backup/pre-restore-") })
        #expect(FileManager.default.fileExists(atPath: libAside + "/image-storage/blob-text"))
        #expect(!FileManager.default.fileExists(atPath: libAside + "/boot-resources"))
        #expect(((j["previous_files"] as? [String]) ?? []).sorted() == aside)
        // The previous database is kept under a new name, never dropped by the tool.
        let previousDBs = (j["previous_databases"] as? [String]) ?? []
        #expect(previousDBs.count == 1 && previousDBs.first?.hasPrefix("maasdb_pre_restore_") == true, "\(previousDBs)")
        #expect(try env.restoreCopies() == previousDBs)

        // Rows and schema head as in the manifest; MAAS running.
        #expect(try eventCount(env) == wantEvents)
        #expect(try env.psql("SELECT name FROM django_migrations WHERE app = 'maasserver' ORDER BY id DESC LIMIT 1") == m.database.schemaHead.django)
        #expect(try servicesActive(env))
        #expect(journals(env).isEmpty)

        // The restored counter file and database counter agree, and went on from the archived value.
        _ = try env.systemctl(["stop", "maas-regiond", "maas-rackd"])
        let fileCounter = Int((try String(contentsOfFile: env.maas + "/counter", encoding: .utf8)).trimmingCharacters(in: .whitespacesAndNewlines)) ?? -2
        #expect(fileCounter == (try env.liveCounter()))
        #expect(fileCounter >= archivedCounter)
        _ = try env.systemctl(["start", "maas-regiond", "maas-rackd"])

        // The human summary shows the secret once, in the register command, and nowhere else.
        try "\(UUID().uuidString)\n".write(toFile: env.maas + "/secret", atomically: false, encoding: .utf8)
        let h = try RT.tool(env, ["restore", archive, "--yes"])
        #expect(h.status == 0, "\(h.stderr)")
        let withSecret = h.stdout.split(separator: "\n").filter { $0.contains(archivedSecret) }
        #expect(withSecret == ["  maas-rack register --url http://127.0.0.1:5240/MAAS --secret \(archivedSecret)"])
        #expect(!h.stderr.contains(archivedSecret))
        RT.removeAsideFolders(root: env.root)
        try env.dropRestoreCopies()
    }

    @Test("a damaged archive is refused before anything changes", arguments: [VerifyIntegrationTests.Damage.bitFlip, .truncated, .fileReplaced, .manifestModeEdited])
    func refusesDamaged(_ d: VerifyIntegrationTests.Damage) throws {
        let shared = try shared
        let env = shared.env
        let copy = try VerifyIntegrationTests.damagedCopy(try shared.baselineArchive(), d, in: env.dir)
        try mutate(env, tag: "damaged-\(d.rawValue)")
        let before = RT.fingerprint(root: env.root)
        let events = try eventCount(env)
        let calls = (try? String(contentsOfFile: env.dir + "/svc/calls.log", encoding: .utf8)) ?? ""

        let r = try RT.tool(env, ["restore", copy, "--yes"])
        #expect(r.status == 65, "\(d): exit \(r.status): \(r.stderr)")
        #expect(r.stderr.contains("refusing to restore"), "\(r.stderr)")
        #expect(r.stderr.contains("nothing was changed"), "\(r.stderr)")
        #expect(RT.diff(before, RT.fingerprint(root: env.root)).isEmpty, "\(RT.diff(before, RT.fingerprint(root: env.root)))")
        #expect(try eventCount(env) == events)
        #expect(try servicesActive(env))
        let callsAfter = (try? String(contentsOfFile: env.dir + "/svc/calls.log", encoding: .utf8)) ?? ""
        #expect(!callsAfter.dropFirst(calls.count).contains(" stop "), "services were stopped: \(callsAfter.dropFirst(calls.count))")
        #expect(RT.asideFolders(root: env.root).isEmpty)
        #expect(journals(env).isEmpty)
    }

    @Test("a failure after each restore step leaves the previous files in place and the services running", arguments: steps)
    func failureAtStep(_ step: String) throws {
        let shared = try shared
        let env = shared.env
        let archive = try shared.baselineArchive()
        try mutate(env, tag: step)
        let before = RT.fingerprint(root: env.root)
        var dirBefore = stat()
        lstat(env.maas, &dirBefore)
        let snapshotFolder = env.maas + "/.maas-snapshot-backup"
        let hadSnapshotFolder = FileManager.default.fileExists(atPath: snapshotFolder)
        let events = try eventCount(env)

        let r = try RT.tool(env, ["restore", archive, "--yes"], extraEnv: ["MSB_TEST_FAIL_AFTER": step])
        #expect(r.status == 1, "\(step): exit \(r.status): \(r.stderr)")
        #expect(r.stderr.contains("injected failure after step '\(step)'"), "\(r.stderr)")
        if step != "restore-verify" {
            #expect(r.stderr.contains("restore failed at step"), "\(r.stderr)")
            let said = RestoreIntegrationTests.beforeStop.contains(step) ? "MAAS was not stopped" : "services started again"
            #expect(r.stderr.contains(said), "\(step): \(r.stderr)")
        }
        if step != "restore-verify" {
            let dbSays = RestoreIntegrationTests.beforeSwap.contains(step) ? "the database was not changed" : "the previous database was put back"
            #expect(r.stderr.contains(dbSays), "\(step): \(r.stderr)")
        }
        // The live maasdb holds its rows as they were, and no copy is left.
        #expect(try eventCount(env) == events, "\(step): the live database changed")
        let copies = try env.restoreCopies()
        #expect(copies.isEmpty, "\(step): \(copies)")
        let diff = RT.diff(before, RT.fingerprint(root: env.root))
        #expect(diff.isEmpty, "\(step): the files differ: \(diff)")
        var dirAfter = stat()
        lstat(env.maas, &dirAfter)
        #expect(dirAfter.st_mode == dirBefore.st_mode && dirAfter.st_uid == dirBefore.st_uid)
        #expect(FileManager.default.fileExists(atPath: env.root + "/etc/maas/local-\(step).conf"))
        #expect(try servicesActive(env), "\(step): services are not running")
        #expect(RT.asideFolders(root: env.root).isEmpty, "\(step): \(RT.asideFolders(root: env.root))")
        #expect(RT.stagingFolders(root: env.root).isEmpty, "\(step): \(RT.stagingFolders(root: env.root))")
        #expect(FileManager.default.fileExists(atPath: snapshotFolder) == hadSnapshotFolder)
        #expect(journals(env).isEmpty, "\(step): journal left: \(journals(env))")
        try? FileManager.default.removeItem(atPath: env.root + "/etc/maas/local-\(step).conf")
    }

    @Test("without a terminal and without --yes, restore refuses (64) and changes nothing")
    func needsYes() throws {
        let env = try shared.env
        let archive = try shared.baselineArchive()
        let calls = (try? String(contentsOfFile: env.dir + "/svc/calls.log", encoding: .utf8)) ?? ""
        let r = try RT.tool(env, ["restore", archive])
        #expect(r.status == 64, "\(r.stderr)")
        #expect(r.stderr.contains("--yes"))
        let rb = try RT.tool(env, ["rollback", archive])
        #expect(rb.status == 64, "\(rb.stderr)")
        let callsAfter = (try? String(contentsOfFile: env.dir + "/svc/calls.log", encoding: .utf8)) ?? ""
        #expect(callsAfter.count == calls.count || !callsAfter.dropFirst(calls.count).contains(" stop "))
        #expect(try servicesActive(env))
    }

    @Test("the version guard refuses another MAAS major.minor unless --force; rollback's host part")
    func versionGuardAndRollback() throws {
        let env = try shared.env
        let dpkg = env.root + "/var/lib/dpkg"
        try FileManager.default.createDirectory(atPath: dpkg, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: env.root + "/var/lib/dpkg") }
        func install(_ version: String) throws {
            try """
                Package: maas-region-controller
                Status: install ok installed
                Priority: optional
                Section: net
                Maintainer: Test <test@example.com>
                Architecture: all
                Version: \(version)
                Description: stand-in for the tests

                """.write(toFile: dpkg + "/status", atomically: true, encoding: .utf8)
        }
        let v34 = "1:3.4.2-14353-g.5e5d5ff1a-0ubuntu1~22.04.1", v35 = "1:3.5.0-15513-g.4d7a5c7f1-0ubuntu1~22.04.1"
        try install(v34)
        let b = try env.tool(["--json", "--reason", "pre-upgrade: maas-region-controller \(v34) -> \(v35)"])
        #expect(b.status == 0, "\(b.stderr)")
        let archive = try #require(RT.json(b)["archive"] as? String)
        defer {
            for s in ["", ".manifest.json", ".verified"] { try? FileManager.default.removeItem(atPath: archive + s) }
        }
        #expect(try RT.manifest(sidecarOf: archive).maasVersion == v34)

        try install(v35)
        let before = RT.fingerprint(root: env.root)
        let refused = try RT.tool(env, ["restore", archive, "--yes"])
        #expect(refused.status == 69, "\(refused.stderr)")
        #expect(refused.stderr.contains("MAAS 3.4") && refused.stderr.contains("MAAS 3.5 is installed"), "\(refused.stderr)")
        #expect(RT.diff(before, RT.fingerprint(root: env.root)).isEmpty)
        // --force passes the guard (the injected failure right after stopping proves it got that far).
        let forced = try RT.tool(env, ["restore", archive, "--yes", "--force"], extraEnv: ["MSB_TEST_FAIL_AFTER": "restore-stop"])
        #expect(forced.status == 1 && forced.stderr.contains("failed at step 'stop services'"), "\(forced.stderr)")
        #expect(try servicesActive(env))

        // rollback: refused inside dpkg or apt, or while the dpkg lock is held.
        let inDpkg = try RT.tool(env, ["rollback", "--dry-run"], extraEnv: ["DPKG_RUNNING_VERSION": "1.21.22"])
        #expect(inDpkg.status == 75 && inDpkg.stderr.contains("after apt or dpkg has finished"), "\(inDpkg.stderr)")
        let inApt = try RT.tool(env, ["rollback", "--dry-run"], extraEnv: ["APT_HOOK_INFO_FD": "20"])
        #expect(inApt.status == 75, "\(inApt.stderr)")
        let lockPath = dpkg + "/lock-frontend"
        let fd = open(lockPath, O_RDWR | O_CREAT, 0o640)
        #expect(fd >= 0)
        var fl = flock()
        fl.l_type = Int16(F_WRLCK)
        fl.l_whence = Int16(SEEK_SET)
        #expect(fcntl(fd, F_SETLK, &fl) == 0)
        let locked = try RT.tool(env, ["rollback", "--dry-run"])
        close(fd)
        #expect(locked.status == 75 && locked.stderr.contains("held by PID \(getpid())"), "\(locked.stderr)")
        #expect(FileManager.default.fileExists(atPath: lockPath), "the lock file must not be touched")

        // The backup saved no .deb for the 3.4 package: rollback cannot put it back without the network.
        let noDebs = try RT.tool(env, ["rollback", "--dry-run"])
        #expect(noDebs.status == 69 && noDebs.stderr.contains("no saved .deb for maas-region-controller"), "\(noDebs.stderr)")

        // With the backup's version installed there is nothing to reinstall: the plan, then the rollback.
        try install(v34)
        let plan = try RT.tool(env, ["rollback", "--dry-run", "--json"])
        #expect(plan.status == 0, "\(plan.stderr)")
        let pj = RT.json(plan)
        #expect(pj["status"] as? String == "dry-run")
        let restorePlan = ((pj["plan"] as? [String: Any])?["restore"] as? [String: Any]) ?? [:]
        #expect(restorePlan["archive"] as? String == archive, "rollback must pick the newest pre-upgrade backup")
        #expect(restorePlan["version_check"] as? String == "skipped (rollback)")
        #expect(((pj["plan"] as? [String: Any])?["packages"] as? [Any])?.isEmpty == true)
        #expect(RT.diff(before, RT.fingerprint(root: env.root)).isEmpty, "--dry-run changed files")

        let rb = try RT.tool(env, ["rollback", "--yes", "--json"])
        #expect(rb.status == 0, "\(rb.stderr)")
        #expect(((RT.json(rb)["restore"] as? [String: Any])?["status"] as? String) == "ok")
        #expect(try servicesActive(env))
        RT.removeAsideFolders(root: env.root)
        try env.dropRestoreCopies()
    }

    @Test("a restore killed at each step is shown by status and undone by recover",
          arguments: steps.filter { $0 != "restore-verify" })
    func killedRestoreIsRecovered(step: String) throws {
        let env = try shared.env
        let archive = try shared.baselineArchive()
        let tag = "killed-" + step
        try mutate(env, tag: tag)
        let before = RT.fingerprint(root: env.root)
        let events = try eventCount(env)
        let marker = env.dir + "/restore-pause-marker"
        try? FileManager.default.removeItem(atPath: marker)
        let pid = try env.start(["restore", archive, "--yes"], env: ["MSB_TEST_PAUSE_AFTER": step, "MSB_TEST_PAUSE_MARKER": marker])
        for _ in 0..<600 where !FileManager.default.fileExists(atPath: marker) { usleep(100_000) }
        #expect(FileManager.default.fileExists(atPath: marker), "the restore did not reach \(step)")
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        // Killed after it started the services again (restore-start), before checking them and
        // marking the files final: MAAS runs, and recover must stop it to put the files back.
        // Killed while the dump loads or is checked: MAAS was never stopped.
        let startedAgain = step == "restore-start" || RestoreIntegrationTests.beforeStop.contains(step)
        #expect(try servicesActive(env) == startedAgain,
                startedAgain ? "the services were started before the kill" : "services should still be stopped after the kill")

        // status exits 1 while the killed run's services are still stopped (issue 23), naming them.
        let st = try RT.tool(env, ["status", "--json"])
        #expect(st.status == (startedAgain ? 0 : 1), "\(st.stderr)")
        #expect(startedAgain || st.stderr.contains("maas-regiond"), "\(st.stderr)")
        let leftovers = (RT.json(st)["leftovers"] as? [[String: Any]]) ?? []
        #expect(leftovers.count == 1 && leftovers.first?["command"] as? String == "restore", "\(st.stdout)")
        #expect(((leftovers.first?["services_still_stopped"] as? [String]) ?? []).sorted() == (startedAgain ? [] : ["maas-rackd", "maas-regiond"]))

        let privateDir = ((leftovers.first?["files"] as? [String]) ?? []).first { ($0 as NSString).lastPathComponent.hasPrefix("msb-") }
        #expect(privateDir.map { FileManager.default.fileExists(atPath: $0) } == true, "the killed run's private folder should be listed")

        let rec = try RT.tool(env, ["recover", "--json"])
        #expect(rec.status == 0, "\(rec.stdout) \(rec.stderr)")
        #expect(RT.json(rec)["status"] as? String == "ok")
        // The stand-in region's own files (counter, heartbeat) may appear or go while MAAS runs
        // during the load: MAAS's writes before the stop are part of the state recover puts back.
        let diff = RT.diff(before, RT.fingerprint(root: env.root)).filter { d in !RT.volatile.contains { d.hasPrefix($0 + ":") } }
        #expect(diff.isEmpty, "recover did not put the files back after a kill at \(step): \(diff)")
        #expect(try servicesActive(env))
        #expect(try eventCount(env) == events, "recover did not put the previous database back after a kill at \(step)")
        let copies = try env.restoreCopies()
        #expect(copies.isEmpty, "\(step): \(copies)")
        #expect(journals(env).isEmpty)
        #expect(RT.asideFolders(root: env.root).isEmpty)
        #expect(RT.stagingFolders(root: env.root).isEmpty, "\(step): \(RT.stagingFolders(root: env.root))")
        if let privateDir { #expect(!FileManager.default.fileExists(atPath: privateDir), "recover left \(privateDir)") }
        let again = try RT.tool(env, ["recover"])
        #expect(again.status == 0 && again.stdout.contains("Nothing to recover"))
        try? FileManager.default.removeItem(atPath: env.root + "/etc/maas/local-\(tag).conf")
    }

    @Test("status reports the last backup, the config and the hooks")
    func status() throws {
        let env = try shared.env
        let archive = try shared.baselineArchive()
        let r = try RT.tool(env, ["status", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let j = RT.json(r)
        #expect((j["last_backup"] as? [String: Any]) != nil)
        #expect(((j["config"] as? [String: Any])?["ok"] as? Bool) == true, "\(j)")
        #expect(j["apt_hook_installed"] as? Bool == false)
        #expect((j["backups"] as? Int ?? 0) >= 1)
        _ = archive
        let human = try RT.tool(env, ["status"])
        #expect(human.stdout.contains("Last backup:") && human.stdout.contains("Hooks:"))
        // A config that does not load: everything else is still shown, and status exits 78.
        let broken = env.dir + "/broken-config.yaml"
        try "services: [\n".write(toFile: broken, atomically: true, encoding: .utf8)
        let b = try env.tool(["status"], config: broken)
        #expect(b.status == 78 && b.stdout.contains("not valid YAML") && b.stdout.contains("Hooks:"), "\(b.status): \(b.stdout) \(b.stderr)")
    }
}
