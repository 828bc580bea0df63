import Foundation
import LibArchive
import MaasBackupCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `verify` and `list` on real archives, and on damaged copies of them.
@Suite("verify and list", .serialized, .enabled(if: TestEnv.skipReason == nil, "\(TestEnv.skipReason ?? "")"), .sharedEnv("verify"))
struct VerifyIntegrationTests {
    /// Ways to damage an archive, and a word the one-line error must contain.
    enum Damage: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case bitFlip, truncated, crcTrailer, trailingGarbage, notGzip
        case fileReplaced, manifestModeEdited, memberAfterManifest, extraMember, missingMember, sidecarEdited, noManifest
        var testDescription: String { rawValue }
        var expected: String {
            switch self {
            case .bitFlip: return "is damaged"
            case .crcTrailer: return "CRC-32"
            case .truncated: return "truncated"
            case .trailingGarbage: return "after the end of the gzip stream"
            case .notGzip: return "not a gzip file"
            case .fileReplaced: return "sha256"
            case .manifestModeEdited: return "mode"
            case .memberAfterManifest: return "follows manifest.json"
            case .extraMember: return "in the archive but not in the manifest"
            case .missingMember: return "in the manifest but not in the archive"
            case .sidecarEdited: return "differs from the manifest.json inside"
            case .noManifest: return "has no manifest.json"
            }
        }
    }

    /// A damaged copy of `archive` (with its sidecar) in its own folder.
    static func damagedCopy(_ archive: String, _ d: Damage, in dir: String) throws -> String {
        let folder = dir + "/damaged-\(d.rawValue)"
        try? FileManager.default.removeItem(atPath: folder)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let copy = folder + "/" + (archive as NSString).lastPathComponent
        try FileManager.default.copyItem(atPath: archive, toPath: copy)
        try FileManager.default.copyItem(atPath: archive + ".manifest.json", toPath: copy + ".manifest.json")
        let size = Int((try FileManager.default.attributesOfItem(atPath: copy)[.size] as? NSNumber)?.intValue ?? 0)
        func patch(at offset: Int, _ f: (UInt8) -> UInt8) throws {
            let h = try FileHandle(forUpdating: URL(fileURLWithPath: copy))
            try h.seek(toOffset: UInt64(offset))
            let b = try #require(try h.read(upToCount: 1)).first!
            try h.seek(toOffset: UInt64(offset))
            try h.write(contentsOf: Data([f(b)]))
            try h.close()
        }
        var members = try RT.readMembers(archive)
        switch d {
        case .bitFlip: try patch(at: size / 2) { $0 ^ 0x04 }
        case .crcTrailer: try patch(at: size - 7) { $0 ^ 0x01 }
        case .truncated: try FileHandle(forUpdating: URL(fileURLWithPath: copy)).truncate(atOffset: UInt64(size - 4096))
        case .trailingGarbage:
            let h = try FileHandle(forUpdating: URL(fileURLWithPath: copy))
            try h.seekToEnd()
            try h.write(contentsOf: Data("garbage\n".utf8))
            try h.close()
        case .notGzip: try Data(repeating: 0x41, count: 4096).write(to: URL(fileURLWithPath: copy))
        case .fileReplaced:
            let i = try #require(members.firstIndex { $0.header.path == "etc/maas/regiond.conf" })
            members[i].data[0] ^= 0x20  // same size, other bytes
            try RT.writeArchive(members, to: copy)
        case .manifestModeEdited:
            var m = try RT.manifest(in: members)
            let i = try #require(m.files.firstIndex { $0.path == "var/lib/maas/secret" })
            m.files[i].mode = "0644"
            try RT.replaceManifest(&members, m)
            try RT.writeArchive(members, to: copy)
            try Data(try m.encoded()).write(to: URL(fileURLWithPath: copy + ".manifest.json"))
        case .memberAfterManifest:
            let i = try #require(members.firstIndex { $0.header.path == "dump.sql" })
            let dump = members.remove(at: i)
            members.append(dump)
            try RT.writeArchive(members, to: copy)
        case .extraMember:
            var h = members[0].header
            h.path = "etc/maas/extra.conf"; h.kind = .file
            members.insert(RT.Member(header: h, data: Array("x\n".utf8)), at: 1)
            try RT.writeArchive(members, to: copy)
        case .missingMember:
            members.removeAll { $0.header.path == "var/lib/maas/secret" }
            try RT.writeArchive(members, to: copy)
        case .sidecarEdited:
            var m = try RT.manifest(in: members)
            m.reason = "pre-upgrade (edited)"
            try Data(try m.encoded()).write(to: URL(fileURLWithPath: copy + ".manifest.json"))
        case .noManifest:
            members.removeAll { $0.header.path == "manifest.json" }
            try RT.writeArchive(members, to: copy)
        }
        return copy
    }

    @Test("a good archive verifies, changes nothing but its stamp, and list shows it verified")
    func goodArchive() throws {
        let shared = try SharedEnv.get()
        let env = shared.env
        let archive = try shared.baselineArchive()
        let m = try RT.manifest(sidecarOf: archive)
        VerifiedStampFile.remove(archive)

        var list = RT.json(try RT.tool(env, ["list", "--json"]))
        var entry = (list["backups"] as? [[String: Any]])?.first { $0["archive"] as? String == archive }
        #expect(entry?["verified"] as? Bool == false)

        let before = try FileManager.default.attributesOfItem(atPath: archive)
        let shaBefore = RT.sha256(archive)
        let r = try RT.tool(env, ["verify", archive, "--json"])
        #expect(r.status == 0, "verify failed: \(r.stderr)")
        let j = RT.json(r)
        #expect(j["status"] as? String == "ok")
        #expect(j["members"] as? Int == m.files.count + 1)
        #expect(j["sidecar"] as? String == "match")
        #expect(j["sha256"] as? String == shaBefore)
        #expect(j["stamp"] as? String == archive + ".verified")
        // Nothing changed: same bytes, same mtime.
        #expect(RT.sha256(archive) == shaBefore)
        let after = try FileManager.default.attributesOfItem(atPath: archive)
        #expect(after[.modificationDate] as? Date == before[.modificationDate] as? Date)

        // A bare name resolves in the destination; the human summary says OK.
        let byName = try RT.tool(env, ["verify", (archive as NSString).lastPathComponent])
        #expect(byName.status == 0 && byName.stdout.hasPrefix("OK: \(archive)"), "\(byName.stdout) \(byName.stderr)")

        list = RT.json(try RT.tool(env, ["list", "--json"]))
        entry = (list["backups"] as? [[String: Any]])?.first { $0["archive"] as? String == archive }
        #expect(entry?["verified"] as? Bool == true)
        #expect(entry?["reason"] as? String == "baseline")
        #expect(entry?["created_at"] as? String == m.createdAt)
        let human = try RT.tool(env, ["list"])
        #expect(human.stdout.contains("baseline") && human.stdout.contains((archive as NSString).lastPathComponent))

        // An archive changed after it was verified is no longer "verified".
        let copyDir = env.dir + "/touched"
        try? FileManager.default.removeItem(atPath: copyDir)
        try FileManager.default.createDirectory(atPath: copyDir, withIntermediateDirectories: true)
        let copy = copyDir + "/" + (archive as NSString).lastPathComponent
        try FileManager.default.copyItem(atPath: archive, toPath: copy)
        try FileManager.default.copyItem(atPath: archive + ".verified", toPath: copy + ".verified")
        #expect(VerifiedStamp.current(archive: copy) == nil, "a copy (same size, maybe the same second, another inode) must not count as verified")
    }

    @Test("damaged, truncated and tampered archives are refused with exit 65 in one line", arguments: Damage.allCases)
    func damaged(_ d: Damage) throws {
        let shared = try SharedEnv.get()
        let env = shared.env
        let copy = try Self.damagedCopy(try shared.baselineArchive(), d, in: env.dir)
        // A stale stamp must go when the archive fails.
        try Data("{}".utf8).write(to: URL(fileURLWithPath: copy + ".verified"))
        let sha = RT.sha256(copy)
        let r = try RT.tool(env, ["verify", copy])
        #expect(r.status == 65, "\(d): exit \(r.status): \(r.stdout) \(r.stderr)")
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(d): expected one line, got: \(r.stderr)")
        #expect(r.stderr.hasPrefix("maas-snapshot-backup: error:"))
        #expect(r.stderr.contains(d.expected), "\(d): \(r.stderr)")
        #expect(r.stdout.isEmpty)
        #expect(RT.sha256(copy) == sha, "verify changed the archive")
        #expect(!FileManager.default.fileExists(atPath: copy + ".verified"))

        let j = try RT.tool(env, ["verify", copy, "--json"])
        #expect(j.status == 65)
        #expect(RT.json(j)["exit_code"] as? Int == 65)
    }

    @Test("--deep loads dump.sql into a throwaway cluster and matches row counts and schema head")
    func deep() throws {
        let shared = try SharedEnv.get()
        let env = shared.env
        let archive = try shared.baselineArchive()
        let m = try RT.manifest(sidecarOf: archive)
        let r = try RT.tool(env, ["verify", archive, "--deep", "--json"])
        #expect(r.status == 0, "deep verify failed: \(r.stderr)")
        let deep = try #require(RT.json(r)["deep"] as? [String: Any])
        let counts = m.database.rowCounts.values.flatMap(\.values)
        #expect(deep["tables"] as? Int == counts.count)
        #expect((deep["rows"] as? NSNumber)?.int64Value == counts.reduce(0, +))
        #expect((deep["schema_head"] as? [String: Any])?["django"] as? String == m.database.schemaHead.django)
        #expect(VerifiedStamp.current(archive: archive)?.deep == true)
        // The throwaway cluster is gone (this verify's: it is made beside the destination; other
        // suites run theirs at the same time elsewhere).
        let scratch = NSRegularExpression.escapedPattern(for: (env.backups as NSString).deletingLastPathComponent)
        let leftover = try RT.spawn(["/usr/bin/pgrep", "-f", scratch + "/msb-[a-zA-Z0-9]{6}/data"])
        #expect(leftover.stdout.isEmpty, "a throwaway postmaster is still running: \(leftover.stdout)")

        // A dump that lost a row, with a manifest made to fit its bytes: the plain verify passes,
        // --deep finds the missing row.
        var members = try RT.readMembers(archive)
        let di = try #require(members.firstIndex { $0.header.path == "dump.sql" })
        var text = String(decoding: members[di].data, as: UTF8.self)
        let copyHead = "COPY public.msb_counter (service, n) FROM stdin;\n"
        let start = try #require(text.range(of: copyHead))
        let rowEnd = try #require(text[start.upperBound...].firstIndex(of: "\n"))
        text.removeSubrange(start.upperBound...rowEnd)
        members[di].data = Array(text.utf8)
        var man = try RT.manifest(in: members)
        man.dump.size = Int64(members[di].data.count)
        man.dump.sha256 = try RT.sha256Hex(members[di].data)
        try RT.replaceManifest(&members, man)
        let dir = env.dir + "/deep-bad"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let bad = dir + "/" + (archive as NSString).lastPathComponent
        try RT.writeArchive(members, to: bad)
        let plain = try RT.tool(env, ["verify", bad])
        #expect(plain.status == 0, "the rewritten archive should pass the plain check: \(plain.stderr)")
        let deepBad = try RT.tool(env, ["verify", bad, "--deep"])
        #expect(deepBad.status == 65, "\(deepBad.stderr)")
        #expect(deepBad.stderr.contains("msb_counter"), "\(deepBad.stderr)")
        #expect(!FileManager.default.fileExists(atPath: bad + ".verified"))
    }

    @Test("verify latest --deep --scratch-dir: the newest archive, the throwaway cluster in the scratch folder, the outcome in status; bad scratch folders refused in one line")
    func latestWithScratch() throws {
        let shared = try SharedEnv.get()
        let env = shared.env
        _ = try shared.baselineArchive()
        let scratch = "/tmp/msb-verify-scratch-\(getpid())"
        try? FileManager.default.removeItem(atPath: scratch)
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o755])
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let metrics = env.dir + "/state/metrics.json"
        let saved = FileManager.default.contents(atPath: metrics)
        defer {
            if let saved { FileManager.default.createFile(atPath: metrics, contents: saved) } else { try? FileManager.default.removeItem(atPath: metrics) }
        }

        let r = try RT.tool(env, ["verify", "latest", "--deep", "--scratch-dir", scratch])
        #expect(r.status == 0, "\(r.stderr)")
        let newest = try #require(Catalog.entries(destination: env.backups).first)
        #expect(r.stdout.contains("OK: \(newest.archive)"), "\(r.stdout)")
        #expect(r.stderr.contains("deep verify: initdb in \(scratch)/msb-"), "the cluster was not made in the scratch folder: \(r.stderr)")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: scratch)) ?? []).isEmpty, "the throwaway cluster is left in \(scratch)")

        // Recorded: status shows the verify and exits 0; a failed last verify makes it exit 2.
        let st = try RT.tool(env, ["status", "--json"])
        let last = RT.json(st)["last_verify"] as? [String: Any]
        #expect(last?["result"] as? String == "ok" && last?["exit_code"] as? Int == 0, "\(st.stdout)")
        #expect(RT.json(st)["last_verify_success_at"] as? String != nil)
        let human = try RT.tool(env, ["status"])
        #expect(human.stdout.contains("Last verify:") && human.stdout.contains(", ok"), "\(human.stdout)")
        var values = try JSONDecoder().decode([String: Double].self, from: try #require(FileManager.default.contents(atPath: metrics)))
        #expect(values["last_verify_deep"] == 1 && values["last_verify_success"] == 1)
        values["last_verify_success"] = 0
        values["last_verify_exit_code"] = 65
        try JSONEncoder().encode(values).write(to: URL(fileURLWithPath: metrics))
        let failed = try RT.tool(env, ["status"])
        #expect(failed.status == 2 && failed.stdout.contains("Last verify:") && failed.stdout.contains("failed (exit 65"), "\(failed.status): \(failed.stdout)")

        // A scratch folder that is not there, a relative one, or one without --deep: one line, nothing done.
        let missing = try RT.tool(env, ["verify", "latest", "--deep", "--scratch-dir", scratch + "/no-such"])
        #expect(missing.status == 69 && missing.stderr.split(separator: "\n").count == 1 && missing.stderr.contains("scratch"), "\(missing.stderr)")
        let relative = try RT.tool(env, ["verify", "latest", "--deep", "--scratch-dir", "tmp"])
        #expect(relative.status == 64, "\(relative.stderr)")
        let notDeep = try RT.tool(env, ["verify", "latest", "--scratch-dir", scratch])
        #expect(notDeep.status == 64, "\(notDeep.stderr)")
    }

    @Test("a missing archive is a usage error")
    func missing() throws {
        let env = try SharedEnv.get().env
        let r = try RT.tool(env, ["verify", env.dir + "/no-such.tar.gz"])
        #expect(r.status == 64, "\(r.stderr)")
    }
}

enum VerifiedStampFile {
    static func remove(_ archive: String) { try? FileManager.default.removeItem(atPath: archive + ".verified") }
}
