import Foundation
import MaasBackupCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// MAAS 3.5+ boot images (issue 24), on the real MAAS 3.5.0 schema: the image rows of the pinned
/// snapshot decide which files of var/lib/maas/image-storage are archived.
@Suite(.serialized, .enabled(if: TestEnv.skipReason == nil && TestEnv.schemaPresent,
                             "\(TestEnv.skipReason ?? "../shared/fixtures/maas-schema is absent: the image rows need the MAAS 3.5.0 schema")"))
final class BootImageTests {
    let env: TestEnv
    /// File names in image-storage (each its content's sha256): synced only, uploaded, shared by both.
    var synced = "", uploaded = "", shared = ""
    var store: String { env.maas + "/image-storage" }

    init() throws {
        env = try TestEnv(name: "images", rows: 200, schema: "maas-3.5.0")
        synced = try addFile(mib: 24)
        uploaded = try addFile(mib: 1)
        shared = try addFile(mib: 1)
        func res(_ id: Int, _ rtype: Int, _ name: String) -> String {
            "(\(id), now(), now(), \(rtype), '\(name)', 'amd64/generic', '{}', false, '')"
        }
        func file(_ set: Int, _ name: String, _ sha: String, _ size: Int) -> String {
            "(now(), now(), '\(name)', 'root-tgz', '{}', \(set), '\(sha)', \(size))"
        }
        _ = try env.psql("""
            INSERT INTO maasserver_bootresource (id, created, updated, rtype, name, architecture, extra, rolling, base_image)
              VALUES \(res(1, 0, "ubuntu/noble")), \(res(2, 2, "custom/mine")), \(res(3, 2, "custom/other"));
            INSERT INTO maasserver_bootresourceset (id, created, updated, version, label, resource_id)
              VALUES (1, now(), now(), '20250101', 'stable', 1), (2, now(), now(), '20250101', 'uploaded', 2),
                     (3, now(), now(), '20250101', 'uploaded', 3);
            INSERT INTO maasserver_bootresourcefile (created, updated, filename, filetype, extra, resource_set_id, sha256, size)
              VALUES \(file(1, "squashfs", synced, 24 << 20)), \(file(1, "boot-kernel", shared, 1 << 20)),
                     \(file(2, "root.tgz", uploaded, 1 << 20)), \(file(3, "root.tgz", shared, 1 << 20));
            """)
    }

    deinit { env.down() }

    /// A random file of `mib` MiB in image-storage, named by its sha256.
    func addFile(mib: Int) throws -> String {
        let tmp = store + "/incoming"
        let r = try TestEnv.sh(["bash", "-c", "head -c \(mib)M /dev/urandom > \(tmp) && sha256sum \(tmp)"])
        let sha = String(r.stdout.prefix(64))
        #expect(rename(tmp, store + "/" + sha) == 0)
        return sha
    }

    func config(_ extra: String) throws -> String {
        let path = env.dir + "/config-\(UUID().uuidString.prefix(6)).yaml"
        try (try String(contentsOfFile: env.config, encoding: .utf8) + extra).write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func backup(_ args: [String] = [], config: String? = nil) throws -> (TestEnv.Result, String?) {
        let r = try env.tool(["--json"] + args, config: config)
        return (r, RT.json(r)["archive"] as? String)
    }

    func members(_ archive: String) throws -> Set<String> {
        let r = try TestEnv.sh(["tar", "-tzf", archive])
        return Set(r.stdout.split(separator: "\n").map { String($0.hasSuffix("/") ? $0.dropLast() : $0) })
    }

    func imageMembers(_ archive: String) throws -> Set<String> {
        Set(try members(archive).filter { $0.hasPrefix("var/lib/maas/image-storage/") }.map { String($0.dropFirst(27)) })
    }

    @Test("a backup archives the uploaded image files (and those shared with one), leaves the synced ones out, and lists both; images: all and none")
    func backupModes() throws {
        var (r, archive) = try backup()
        #expect(r.status == 0, "backup failed: \(r.stderr)")
        var a = try #require(archive)
        #expect(try imageMembers(a) == [uploaded, shared, "blob-random", "blob-text", "blob-text-hardlink"])
        let m = try #require(try RT.manifest(sidecarOf: a).images)
        #expect(m.mode == "uploaded")
        #expect(m.files.map(\.name) == [synced, uploaded, shared].sorted())
        let byName = Dictionary(uniqueKeysWithValues: m.files.map { ($0.name, $0) })
        #expect(byName[synced]?.kind == .synced && byName[synced]?.archived == false)
        #expect(byName[synced]?.size == 24 << 20 && byName[synced]?.sha256 == synced)
        #expect(byName[uploaded]?.kind == .uploaded && byName[uploaded]?.archived == true)
        #expect(byName[shared]?.kind == .uploaded && byName[shared]?.archived == true)
        #expect(env.leftovers().isEmpty, "leftovers: \(env.leftovers())")

        (r, archive) = try backup(config: try config("images: all\n"))
        #expect(r.status == 0, "backup failed: \(r.stderr)")
        a = try #require(archive)
        #expect(try imageMembers(a).isSuperset(of: [synced, uploaded, shared]))
        #expect(try RT.manifest(sidecarOf: a).images?.files.allSatisfy(\.archived) == true)

        (r, archive) = try backup(config: try config("images: none\n"))
        #expect(r.status == 0, "backup failed: \(r.stderr)")
        a = try #require(archive)
        #expect(try imageMembers(a) == ["blob-random", "blob-text", "blob-text-hardlink"])
        #expect(try RT.manifest(sidecarOf: a).images?.files.contains(where: \.archived) == false)

        let bad = try env.tool([], config: try config("images: some\n"))
        #expect(bad.status == 78 && bad.stderr.contains("images"), "\(bad.status) \(bad.stderr)")
    }

    @Test("synced images neither make the preflight refuse a copy-in-window backup nor go through the window's copy")
    func syncedImagesDoNotRefuse() throws {
        // var/lib/maas is not snapshotted (no LVM here): it is copied in the window when small enough.
        let small = try config("copy_in_window_max: 16M\n")
        let (r, archive) = try backup(["--snapshot", "lvm"], config: small)
        #expect(r.status == 0, "backup refused: \(r.stderr)")
        #expect(RT.json(r)["snapshot_method"] as? String == "copy")
        let a = try #require(archive)
        #expect(try imageMembers(a).contains(uploaded) && !(try imageMembers(a).contains(synced)))
        // Everything archived: the same size check refuses, as before.
        let all = try env.tool(["--snapshot", "lvm"], config: try config("copy_in_window_max: 16M\nimages: all\n"))
        #expect(all.status != 0 && all.stderr.contains("copy_in_window_max"), "\(all.status) \(all.stderr)")
        #expect(env.leftovers().isEmpty, "leftovers: \(env.leftovers())")
        #expect(try env.isActive("maas-regiond"))
    }

    func inode(_ p: String) -> UInt64? {
        var st = stat()
        return lstat(p, &st) == 0 ? UInt64(st.st_ino) : nil
    }

    @Test("restore on the same host moves the live image store into the restored tree (same inodes); a failed restore moves it back")
    func restoreKeepsLiveStore() throws {
        let (r, archive) = try backup()
        #expect(r.status == 0, "backup failed: \(r.stderr)")
        let a = try #require(archive)
        let before = try #require(inode(store + "/" + synced))
        let upBefore = try #require(inode(store + "/" + uploaded))

        let failed = try env.tool(["restore", a, "--yes"], env: ["MSB_TEST_FAIL_AFTER": "restore-keep"])
        #expect(failed.status != 0)
        #expect(inode(store + "/" + synced) == before, "the live synced image was not moved back")
        #expect(inode(store + "/" + uploaded) == upBefore, "the live uploaded image was not put back")
        RT.removeAsideFolders(root: env.root)

        let ok = try env.tool(["restore", a, "--yes"])
        #expect(ok.status == 0, "restore failed: \(ok.stderr)")
        #expect(inode(store + "/" + synced) == before, "the synced image was copied or lost, not moved")
        #expect(inode(store + "/" + uploaded) != nil)
        #expect(RT.sha256(store + "/" + uploaded) == uploaded)
        #expect(RT.sha256(store + "/" + shared) == shared)
        #expect(ok.stderr.contains("image file"), "\(ok.stderr)")
    }

    @Test("restore onto an empty root and cluster: uploaded files are there and agree with their rows, synced ones are listed for download, a file no row names is listed for regiond's check")
    func freshMachineRestore() throws {
        try Data("half a download".utf8).write(to: URL(fileURLWithPath: store + "/stray.partial"))
        let (r, archive) = try backup()
        #expect(r.status == 0, "backup failed: \(r.stderr)")
        let a = try #require(archive)

        let cluster = try ScratchCluster(name: "images-fresh")
        defer { cluster.stop() }
        let fresh = env.dir + "/fresh"
        for d in [fresh + "/root", fresh + "/svc"] {
            try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        }
        let cfg = fresh + "/config.yaml"
        try """
            root: \(fresh)/root
            destination: \(fresh)/backups
            database: {host: \(cluster.socket), user: postgres, name: maasdb, os_user: root}
            lock_file: \(fresh)/lock
            state_dir: \(fresh)/state
            signing_key: \(env.dir)/signing-key
            services: [maas-regiond, maas-rackd, maas-dhcpd]

            """.write(toFile: cfg, atomically: false, encoding: .utf8)
        let res = try TestEnv.sh([TestEnv.binary, "restore", a, "--yes", "--json", "--config", cfg],
                                 env: env.environment.merging(["FAKE_SYSTEMCTL_DIR": fresh + "/svc"]) { $1 })
        #expect(res.status == 0, "restore: \(res.stderr)")
        let images = try #require(RT.json(res)["images"] as? [String: Any], "\(res.stdout)")
        #expect(images["download"] as? [String] == [synced])
        #expect(images["download_bytes"] as? Int == 24 << 20)
        #expect((images["missing_uploaded"] as? [String])?.isEmpty == true)
        // testenv's own blobs have no image row either.
        #expect(images["unexpected"] as? [String] == ["blob-random", "blob-text", "blob-text-hardlink", "stray.partial"])
        #expect(images["present"] as? Int == 2)

        // The restored rows and files agree: each file of an uploaded resource is there with its
        // content; the synced-only one is missing, which makes regiond download it again.
        let freshStore = fresh + "/root/var/lib/maas/image-storage"
        let rows = Set(try cluster.psql("SELECT sha256 FROM maasserver_bootresourcefile").split(separator: "\n").map(String.init))
        #expect(rows == [synced, uploaded, shared])
        for sha in rows where sha != synced { #expect(RT.sha256(freshStore + "/" + sha) == sha, "\(sha) missing or different") }
        #expect(!FileManager.default.fileExists(atPath: freshStore + "/" + synced))
        let uploadedRows = try cluster.psql("""
            SELECT count(*) FROM maasserver_bootresourcefile f JOIN maasserver_bootresourceset s ON s.id = f.resource_set_id
            JOIN maasserver_bootresource b ON b.id = s.resource_id WHERE b.rtype = 2
            """)
        #expect(uploadedRows == "2")
    }
}
