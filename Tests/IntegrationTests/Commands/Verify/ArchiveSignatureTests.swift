import Foundation
import LibArchive
import MaasBackupCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Issue 23: archives are signed (manifest.sig, Ed25519, this host's key or `trusted_keys`), and
/// no member is setuid, setgid or carries extended attributes.
extension ArchiveTrustTests {
    /// The baseline's members with `member` (a file under var/lib/maas) added as a setuid-root shell,
    /// recorded in the manifest as what it is, and signed again with this host's key: only the
    /// setuid check can refuse it.
    func setuidArchive(_ dir: String) throws -> String {
        try rewritten(try shared.baselineArchive(), in: dir) { members, m in
            var h = try #require(members.first { $0.header.kind == .file && $0.header.path.hasPrefix("var/lib/maas/") }).header
            let data = Array("#!/bin/sh\nexec /bin/sh -p\n".utf8)
            h.path = "var/lib/maas/rootshell"; h.permissions = 0o4755; h.uid = 0; h.gid = 0; h.uname = "root"; h.gname = "root"
            h.size = Int64(data.count)
            let i = try #require(members.firstIndex { $0.header.path == "dump.sql" })
            members.insert(RT.Member(header: h, data: data), at: i)
            m.files.append(FileRecord(path: h.path, type: .file, size: h.size, mode: "4755", uid: 0, gid: 0, user: "root", group: "root",
                                      mtime: h.mtime, sha256: try RT.sha256Hex(data), linkTarget: nil))
        }
    }

    @Test("a setuid-root member with a matching, signed manifest: verify and restore refuse it, nothing is installed")
    func setuidMemberRefused() throws {
        let env = try shared.env
        let dir = try folder(env, "setuid")
        let evil = try setuidArchive(dir)
        var r = try RT.tool(env, ["verify", evil])
        #expect(r.status == 65, "exit \(r.status): \(r.stderr)")
        #expect(r.stderr.contains("rootshell") && r.stderr.contains("setuid"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        let calls = (try? String(contentsOfFile: env.dir + "/svc/calls.log", encoding: .utf8)) ?? ""
        r = try RT.tool(env, ["restore", evil, "--yes"])
        #expect(r.status == 65, "exit \(r.status): \(r.stderr)")
        let callsAfter = (try? String(contentsOfFile: env.dir + "/svc/calls.log", encoding: .utf8)) ?? ""
        #expect(!callsAfter.dropFirst(calls.count).contains(" stop "), "services were stopped")
        #expect(!FileManager.default.fileExists(atPath: env.maas + "/rootshell"), "the setuid file was installed")
        RT.removeAsideFolders(root: env.root)
    }

    @Test("a backup signs its manifest with the key `key show` prints; manifest.sig is the last member")
    func backupIsSigned() throws {
        let env = try shared.env
        let archive = try shared.baselineArchive()
        let members = try RT.readMembers(archive)
        #expect(members.map(\.header.path).suffix(2) == ["manifest.json", ManifestSignature.member])
        let sig = try JSONSerialization.jsonObject(with: Data(try #require(members.last).data)) as? [String: Any] ?? [:]
        let k = try RT.tool(env, ["key", "show", "--json"])
        #expect(k.status == 0, "\(k.stderr)")
        let key = RT.json(k)
        #expect(key["public_key"] as? String == sig["public_key"] as? String && sig["public_key"] != nil, "\(key) \(sig)")
        var st = stat()
        #expect(lstat(env.signingKey, &st) == 0 && st.st_mode & 0o777 == 0o600 && st.st_uid == 0)
        let v = try RT.tool(env, ["verify", archive])
        #expect(v.status == 0 && v.stdout.contains("signed:    by key \(key["key_id"] as? String ?? "?") (this host)"), "\(v.stdout)\(v.stderr)")
        // A key file others can read is refused, before anything changes.
        chmod(env.signingKey, 0o644)
        defer { chmod(env.signingKey, 0o600) }
        let b = try RT.tool(env, ["verify", archive])
        #expect(b.status == 78 && b.stderr.contains("chmod 600"), "exit \(b.status): \(b.stderr)")
    }

    @Test("a changed member with a manifest rewritten to fit: the old signature no longer matches, no signature is refused")
    func tamperedMemberRefused() throws {
        let env = try shared.env
        let dir = try folder(env, "tampered")
        var members = try RT.readMembers(try shared.baselineArchive())
        let i = try #require(members.firstIndex { $0.header.path == "etc/maas/regiond.conf" })
        members[i].data += Array("# planted\n".utf8)
        var m = try RT.manifest(in: members)
        let fi = try #require(m.files.firstIndex { $0.path == "etc/maas/regiond.conf" })
        m.files[fi].size = Int64(members[i].data.count)
        m.files[fi].sha256 = try RT.sha256Hex(members[i].data)
        let mi = try #require(members.lastIndex { $0.header.path == "manifest.json" })
        members[mi].data = try m.encoded()  // manifest.sig kept: the signature of the old manifest
        let oldSig = dir + "/old-sig.tar.gz"
        try RT.writeArchive(members, to: oldSig)
        chmod(oldSig, 0o600)
        var r = try RT.tool(env, ["verify", oldSig])
        #expect(r.status == 65 && r.stderr.contains("signature") && r.stderr.contains("does not match"), "exit \(r.status): \(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        r = try RT.tool(env, ["restore", oldSig, "--yes"])
        #expect(r.status == 65, "exit \(r.status): \(r.stderr)")
        #expect(try String(contentsOfFile: env.root + "/etc/maas/regiond.conf", encoding: .utf8).contains("# planted") == false)

        try RT.setSignature(&members, key: nil)
        let noSig = dir + "/no-sig.tar.gz"
        try RT.writeArchive(members, to: noSig)
        chmod(noSig, 0o600)
        r = try RT.tool(env, ["verify", noSig])
        #expect(r.status == 65 && r.stderr.contains("is not signed") && r.stderr.contains("--allow-unsigned"), "exit \(r.status): \(r.stderr)")
    }

    @Test("an archive signed by another key: refused naming the key; trusted once its public key is in trusted_keys")
    func otherKeyNeedsTrust() throws {
        let env = try shared.env
        let dir = try folder(env, "other-key", mode: 0o700)
        let (other, _) = try HostKey.loadOrCreate(path: dir + "/other-signing-key")
        var members = try RT.readMembers(try shared.baselineArchive())
        try RT.setSignature(&members, key: other)
        let archive = dir + "/" + (try shared.baselineArchive() as NSString).lastPathComponent
        try RT.writeArchive(members, to: archive)
        chmod(archive, 0o600)
        var r = try RT.tool(env, ["verify", archive])
        #expect(r.status == 65 && r.stderr.contains("key \(other.publicKey.id)") && r.stderr.contains("trusted_keys"), "exit \(r.status): \(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        let cfg = dir + "/config.yaml"
        try (try String(contentsOfFile: env.config, encoding: .utf8) + "trusted_keys:\n  - \(other.publicKey.text)\n")
            .write(toFile: cfg, atomically: false, encoding: .utf8)
        r = try env.tool(["verify", archive], config: cfg)
        #expect(r.status == 0 && r.stdout.contains("\(other.publicKey.id) (trusted_keys)"), "exit \(r.status): \(r.stdout)\(r.stderr)")
        // A key that is not one.
        try (try String(contentsOfFile: env.config, encoding: .utf8) + "trusted_keys:\n  - ed25519:bm90IGEga2V5\n")
            .write(toFile: cfg, atomically: false, encoding: .utf8)
        r = try env.tool(["verify", archive], config: cfg)
        #expect(r.status == 78 && r.stderr.contains("not an Ed25519 public key"), "exit \(r.status): \(r.stderr)")
    }

    @Test("an unsigned archive (made before signing) is refused by verify, restore and rollback; --allow-unsigned accepts it and says what it skips")
    func unsignedNeedsFlag() throws {
        let env = try shared.env
        let dir = try folder(env, "unsigned")
        var members = try RT.readMembers(try shared.baselineArchive())
        try RT.setSignature(&members, key: nil)
        let archive = dir + "/" + (try shared.baselineArchive() as NSString).lastPathComponent
        try RT.writeArchive(members, to: archive)
        chmod(archive, 0o600)
        var r = try RT.tool(env, ["verify", archive])
        #expect(r.status == 65 && r.stderr.contains("is not signed"), "exit \(r.status): \(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        let calls = (try? String(contentsOfFile: env.dir + "/svc/calls.log", encoding: .utf8)) ?? ""
        r = try RT.tool(env, ["restore", archive, "--yes"])
        #expect(r.status == 65 && r.stderr.contains("is not signed"), "exit \(r.status): \(r.stderr)")
        r = try RT.tool(env, ["rollback", archive, "--yes"])
        #expect(r.status == 65 && r.stderr.contains("is not signed"), "rollback: exit \(r.status): \(r.stderr)")
        let callsAfter = (try? String(contentsOfFile: env.dir + "/svc/calls.log", encoding: .utf8)) ?? ""
        #expect(!callsAfter.dropFirst(calls.count).contains(" stop "), "services were stopped")

        r = try RT.tool(env, ["verify", archive, "--allow-unsigned"])
        #expect(r.status == 0 && r.stdout.contains("signed:    no"), "exit \(r.status): \(r.stdout)\(r.stderr)")
        #expect(r.stderr.contains("not signed") && r.stderr.contains("skipped"), "\(r.stderr)")
        r = try RT.tool(env, ["restore", archive, "--yes", "--allow-unsigned"])
        #expect(r.status == 0, "exit \(r.status): \(r.stderr)")
        #expect(r.stderr.contains("not signed") && r.stderr.contains("skips"), "\(r.stderr)")
        RT.removeAsideFolders(root: env.root)
    }

    @Test("a backup leaves setuid and setgid bits out, with a warning naming the file")
    func backupStripsSetuid() throws {
        let env = try shared.env
        let file = env.maas + "/suid-helper"
        try Data("#!/bin/sh\n".utf8).write(to: URL(fileURLWithPath: file))
        chmod(file, 0o4755)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let r = try RT.tool(env, ["--json", "--reason", "setuid"])
        #expect(r.status == 0, "exit \(r.status): \(r.stderr)")
        let j = RT.json(r)
        let warnings = (j["warnings"] as? [String]) ?? []
        #expect(warnings.contains { $0.contains("var/lib/maas/suid-helper (4755)") }, "\(warnings)")
        let archive = try #require(j["archive"] as? String)
        defer { for s in ["", ".manifest.json", ".verified"] { try? FileManager.default.removeItem(atPath: archive + s) } }
        let rec = try #require(try RT.manifest(sidecarOf: archive).files.first { $0.path == "var/lib/maas/suid-helper" })
        #expect(rec.mode == "0755")
        let member = try #require(try RT.readMembers(archive).first { $0.header.path == "var/lib/maas/suid-helper" })
        #expect(member.header.permissions == 0o755)
        #expect(try RT.tool(env, ["verify", archive]).status == 0)
    }
}
