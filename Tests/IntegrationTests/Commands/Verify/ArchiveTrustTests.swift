import Foundation
import LibArchive
import MaasBackupCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// An archive is untrusted input: restore and verify read the file they checked (opened once),
/// only from a place only root can change, and refuse members and manifests the tool never writes.
@Suite("archive trust", .serialized, .enabled(if: TestEnv.skipReason == nil, "\(TestEnv.skipReason ?? "")"), .sharedEnv("trust"))
struct ArchiveTrustTests {
    var shared: SharedEnv { get throws { try SharedEnv.get() } }

    /// A folder of its own below the environment (root-owned, 0755).
    func folder(_ env: TestEnv, _ name: String, mode: mode_t = 0o755) throws -> String {
        let d = env.dir + "/trust-" + name
        try? FileManager.default.removeItem(atPath: d)
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        chmod(d, mode)
        return d
    }

    /// A copy of `archive` (and its sidecar) in `dir`, under `name`.
    func copy(_ archive: String, to dir: String, name: String? = nil) throws -> String {
        let dst = dir + "/" + (name ?? (archive as NSString).lastPathComponent)
        try? FileManager.default.removeItem(atPath: dst)
        try FileManager.default.copyItem(atPath: archive, toPath: dst)
        chmod(dst, 0o600)
        return dst
    }

    /// The archive with `change` applied to its members and manifest (sidecar rewritten to match).
    func rewritten(_ archive: String, in dir: String, _ change: (inout [RT.Member], inout Manifest) throws -> Void) throws -> String {
        var members = try RT.readMembers(archive)
        var m = try RT.manifest(in: members)
        try change(&members, &m)
        try RT.replaceManifest(&members, m)
        let out = dir + "/" + (archive as NSString).lastPathComponent
        try RT.writeArchive(members, to: out)
        chmod(out, 0o600)
        try Data(try m.encoded()).write(to: URL(fileURLWithPath: out + ".manifest.json"))
        return out
    }

    @Test("an archive swapped for another after restore verified it is not the one restored")
    func swapAfterVerify() throws {
        let shared = try shared
        let env = shared.env
        let dir = try folder(env, "swap")
        let archive = try copy(try shared.baselineArchive(), to: dir)
        let pwned = "/tmp/msb-trust-pwned-\(getpid())"
        try? FileManager.default.removeItem(atPath: pwned)
        // The other archive: the same members plus one file, and a dump.sql that runs a shell command.
        let evilDir = try folder(env, "evil")
        let evil = try rewritten(archive, in: evilDir) { members, m in
            var h = try #require(members.first { $0.header.path == "etc/maas/regiond.conf" }).header
            h.path = "etc/maas/planted.conf"
            let i = try #require(members.firstIndex { $0.header.path == "dump.sql" })
            members.insert(RT.Member(header: h, data: Array("planted\n".utf8)), at: i)
            members[i + 1].data = Array("\\! touch \(pwned)\n".utf8) + members[i + 1].data
        }
        let marker = env.dir + "/pause-swap"
        try? FileManager.default.removeItem(atPath: marker)
        let pid = try env.start(["restore", archive, "--yes"],
                                env: ["MSB_TEST_PAUSE_AFTER": "restore-verify", "MSB_TEST_PAUSE_SECONDS": "6", "MSB_TEST_PAUSE_MARKER": marker])
        var waited = 0
        while !FileManager.default.fileExists(atPath: marker) && waited < 600 { usleep(100_000); waited += 1 }
        #expect(FileManager.default.fileExists(atPath: marker), "restore never reached its pause")
        #expect(rename(evil, archive) == 0)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        #expect((status >> 8) & 0xff == 0, "restore exited \((status >> 8) & 0xff)")
        #expect(!FileManager.default.fileExists(atPath: env.root + "/etc/maas/planted.conf"), "the swapped-in archive was extracted")
        #expect(!FileManager.default.fileExists(atPath: pwned), "the swapped-in dump.sql ran a shell command")
        RT.removeAsideFolders(root: env.root)
        try? FileManager.default.removeItem(atPath: pwned)
    }

    @Test("a bare archive name is looked up in the destination only, never in the current folder")
    func bareNameOnlyInDestination() throws {
        let shared = try shared
        let env = shared.env
        let dir = try folder(env, "cwd")
        let name = "maas-backup-planted-20990101T000000Z.tar.gz"
        _ = try copy(try shared.baselineArchive(), to: dir, name: name)
        var r = try TestEnv.sh(["env", "-C", dir, TestEnv.binary, "verify", name, "--config", env.config], env: env.environment)
        #expect(r.status == 64, "exit \(r.status): \(r.stderr)")
        #expect(r.stderr.contains("not in the destination") && r.stderr.contains("./\(name)"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        // Named as a path it is used.
        r = try TestEnv.sh(["env", "-C", dir, TestEnv.binary, "verify", "./" + name, "--config", env.config], env: env.environment)
        #expect(r.status == 0, "exit \(r.status): \(r.stderr)")
        // And a name that is in the destination is taken from there, whatever the current folder holds.
        let base = (try shared.baselineArchive() as NSString).lastPathComponent
        try Data("not an archive".utf8).write(to: URL(fileURLWithPath: dir + "/" + base))
        r = try TestEnv.sh(["env", "-C", dir, TestEnv.binary, "verify", base, "--config", env.config], env: env.environment)
        #expect(r.status == 0, "exit \(r.status): \(r.stderr)")
    }

    @Test("an archive in a folder others can write, or owned by another user, is refused before anything is read")
    func untrustedPlace() throws {
        let shared = try shared
        let env = shared.env
        let open = try folder(env, "open", mode: 0o1777)
        var r = try RT.tool(env, ["verify", try copy(try shared.baselineArchive(), to: open)])
        #expect(r.status == 65, "exit \(r.status): \(r.stderr)")
        #expect(r.stderr.contains("others can write") && r.stderr.contains("copy it"), "\(r.stderr)")
        let calls = (try? String(contentsOfFile: env.dir + "/svc/calls.log", encoding: .utf8)) ?? ""
        r = try RT.tool(env, ["restore", try copy(try shared.baselineArchive(), to: open), "--yes"])
        #expect(r.status == 65, "exit \(r.status): \(r.stderr)")
        let callsAfter = (try? String(contentsOfFile: env.dir + "/svc/calls.log", encoding: .utf8)) ?? ""
        #expect(!callsAfter.dropFirst(calls.count).contains(" stop "), "services were stopped")

        let mine = try folder(env, "owned")
        let a = try copy(try shared.baselineArchive(), to: mine)
        chown(a, 65534, 65534)
        r = try RT.tool(env, ["verify", a])
        #expect(r.status == 65, "exit \(r.status): \(r.stderr)")
        #expect(r.stderr.contains("owned by uid 65534"), "\(r.stderr)")
        chown(a, 0, 0)
        chmod(a, 0o666)
        r = try RT.tool(env, ["verify", a])
        #expect(r.status == 65, "exit \(r.status): \(r.stderr)")
        // A symlink to a good archive is not followed.
        let link = mine + "/link.tar.gz"
        symlink(try shared.baselineArchive(), link)
        r = try RT.tool(env, ["verify", link])
        #expect(r.status == 64 || r.status == 65, "exit \(r.status): \(r.stderr)")
        #expect(r.stderr.contains("symlink") || r.stderr.contains("not a regular file"), "\(r.stderr)")
    }

    /// Members added with GNU tar to a copy of `archive` (a FIFO and a character device), recorded
    /// in the manifest as what they are, so the archive matches its manifest.
    func archiveWithSpecialMembers(_ archive: String, in dir: String) throws -> String {
        let work = dir + "/work"
        try FileManager.default.createDirectory(atPath: work + "/etc/maas", withIntermediateDirectories: true)
        #expect(mkfifo(work + "/etc/maas/planted-fifo", 0o666) == 0)
        #expect(try RT.spawn(["/bin/mknod", "-m", "666", work + "/etc/maas/planted-null", "c", "1", "3"]).status == 0)
        chmod(work + "/etc/maas/planted-fifo", 0o666)
        chmod(work + "/etc/maas/planted-null", 0o666)
        var members = try RT.readMembers(archive)
        var m = try RT.manifest(in: members)
        for n in ["planted-fifo", "planted-null"] {
            var st = stat()
            lstat(work + "/etc/maas/" + n, &st)
            var rec = try #require(m.files.first { $0.type == .file })
            rec.path = "etc/maas/" + n; rec.type = .other; rec.size = 0; rec.mode = "0666"; rec.uid = 0; rec.gid = 0
            rec.user = "root"; rec.group = "root"; rec.mtime = Int64(st.st_mtim.tv_sec); rec.sha256 = nil; rec.linkTarget = nil
            m.files.append(rec)
        }
        members.removeAll { $0.header.path == "manifest.json" || $0.header.path == ManifestSignature.member }
        let tar = dir + "/special.tar"
        try RT.writeArchive(members, to: tar + ".gz")
        var r = try RT.spawn(["/bin/gzip", "-d", "-f", tar + ".gz"])
        #expect(r.status == 0, "\(r.stderr)")
        r = try RT.spawn(["/bin/tar", "--format=pax", "--owner=root:0", "--group=root:0", "-rf", tar, "-C", work,
                          "etc/maas/planted-fifo", "etc/maas/planted-null"])
        #expect(r.status == 0, "\(r.stderr)")
        try Data(try m.encoded()).write(to: URL(fileURLWithPath: work + "/manifest.json"))
        r = try RT.spawn(["/bin/tar", "--format=pax", "--owner=root:0", "--group=root:0", "--mtime=@0", "-rf", tar, "-C", work, "manifest.json"])
        #expect(r.status == 0, "\(r.stderr)")
        r = try RT.spawn(["/bin/gzip", "-n", "-f", tar])
        #expect(r.status == 0, "\(r.stderr)")
        let out = dir + "/" + (archive as NSString).lastPathComponent
        try FileManager.default.moveItem(atPath: tar + ".gz", toPath: out)
        chmod(out, 0o600)
        try Data(try m.encoded()).write(to: URL(fileURLWithPath: out + ".manifest.json"))
        return out
    }

    @Test("FIFOs and device nodes are refused by verify and never created by restore")
    func specialMembers() throws {
        let shared = try shared
        let env = shared.env
        let dir = try folder(env, "special")
        let evil = try archiveWithSpecialMembers(try shared.baselineArchive(), in: dir)
        var r = try RT.tool(env, ["verify", evil])
        #expect(r.status == 65, "exit \(r.status): \(r.stderr)")
        #expect(r.stderr.contains("planted-") && r.stderr.contains("never writes"), "\(r.stderr)")
        r = try RT.tool(env, ["restore", evil, "--yes"])
        #expect(r.status == 65, "exit \(r.status): \(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: env.root + "/etc/maas/planted-null"))
        #expect(!FileManager.default.fileExists(atPath: env.root + "/etc/maas/planted-fifo"))
        RT.removeAsideFolders(root: env.root)
    }

    enum ManifestLie: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case otherPath, dotDotPath, emptyPaths, excludeEscapes, absoluteDeb, deeperDeb
        var testDescription: String { rawValue }
    }

    @Test("a manifest that names other paths, '..', no path, an escaping exclude or a .deb outside its folder is refused by verify and restore",
          arguments: ManifestLie.allCases)
    func manifestLies(_ lie: ManifestLie) throws {
        let shared = try shared
        let env = shared.env
        let dir = try folder(env, "lie-\(lie.rawValue)")
        let archive = try shared.baselineArchive()
        let name = ((archive as NSString).lastPathComponent as NSString).deletingPathExtension
        let evil = try rewritten(archive, in: dir) { _, m in
            switch lie {
            case .otherPath: m.paths[0].path = "/etc"
            case .dotDotPath: m.paths[0].path = "/etc/maas/../maas"
            case .emptyPaths: m.paths = []
            case .excludeEscapes: m.exclude = ["/var/lib/maas/../../../etc"]
            case .absoluteDeb: m.savedDebs = ["maas-common": "/tmp/evil.deb"]
            case .deeperDeb: m.savedDebs = ["maas-common": String(name.dropLast(4)) + ".debs/../../evil.deb"]
            }
        }
        let r = try RT.tool(env, ["verify", evil])
        #expect(r.status == 65, "\(lie): exit \(r.status): \(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        let before = RT.fingerprint(root: env.root)
        let rr = try RT.tool(env, ["restore", evil, "--yes"])
        #expect(rr.status == 65, "\(lie): exit \(rr.status): \(rr.stderr)")
        #expect(RT.diff(before, RT.fingerprint(root: env.root)).isEmpty)
        #expect(RT.asideFolders(root: env.root).isEmpty)
    }

    @Test("rollback installs only saved .debs that match the checksums the backup recorded, checked before anything changes")
    func savedDebChecksums() throws {
        let shared = try shared
        let env = shared.env
        let dir = try folder(env, "debs")
        let base = (try shared.baselineArchive() as NSString).lastPathComponent
        let stem = String(base.dropLast(ArchiveName.suffix.count))
        let deb = "maas-common_3.4.0-1_all.deb"
        let content = Array("!<arch>\nnot really a deb\n".utf8)
        let evil = try rewritten(try shared.baselineArchive(), in: dir) { _, m in
            m.reason = "pre-upgrade maas-common 1:3.4.0-1 -> 1:3.5.0-1"
            m.maasPackages = ["maas-common": "1:3.4.0-1"]
            m.savedDebs = ["maas-common": stem + ".debs/" + deb]
            m.savedDebsSha256 = ["maas-common": try RT.sha256Hex(content)]
        }
        try FileManager.default.createDirectory(atPath: dir + "/" + stem + ".debs", withIntermediateDirectories: true)
        // Swapped: other bytes than the backup saved.
        try Data("!<arch>\nswapped in later\n".utf8).write(to: URL(fileURLWithPath: dir + "/" + stem + ".debs/" + deb))
        let calls = (try? String(contentsOfFile: env.dir + "/svc/calls.log", encoding: .utf8)) ?? ""
        var r = try RT.tool(env, ["rollback", evil, "--yes"])
        #expect(r.status == 65, "exit \(r.status): \(r.stderr)")
        #expect(r.stderr.contains("does not match the SHA-256"), "\(r.stderr)")
        let callsAfter = (try? String(contentsOfFile: env.dir + "/svc/calls.log", encoding: .utf8)) ?? ""
        #expect(!callsAfter.dropFirst(calls.count).contains(" stop "), "services were stopped")
        // The bytes it saved pass the check (and the host part then stops at the root check).
        try Data(content).write(to: URL(fileURLWithPath: dir + "/" + stem + ".debs/" + deb))
        r = try RT.tool(env, ["rollback", evil, "--yes"])
        #expect(r.status == 78 && r.stderr.contains("only with root: /"), "exit \(r.status): \(r.stderr)")
        #expect(RT.asideFolders(root: env.root).isEmpty)
    }
}
