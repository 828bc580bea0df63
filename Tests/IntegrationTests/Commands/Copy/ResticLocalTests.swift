import Foundation
import MaasBackupCore
import SystemPackage
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The restic driver against a local-path repository, with the real restic (0.14 on Debian 12).
@Suite("restic, local repository", .serialized, .enabled(if: ResticFixture.skipReason == nil, "\(ResticFixture.skipReason ?? "")"))
struct ResticLocalTests {
    @Test func copyDumpAndDedup() async throws {
        let fx = try ResticFixture("local")
        defer { fx.cleanup() }
        let repoPath = fx.dir + "/repo"
        let repo = try fx.repository(repoPath)
        #expect(try await repo.initialize() == true)
        #expect(try await repo.initialize() == false, "initialising again is success")

        let tree = try fx.makeTree("tree")
        let first = try fx.makeArchive("maas-backup-day1", of: tree)
        let copier = ResticCopier(repository: repo)
        let c1 = try await copier.copy(archive: first, kind: .timer, maasVersion: "3.4.0", host: ResticFixture.host)
        #expect(c1.fileName == "maas-backup-day1.tar")
        #expect(c1.compressedBytes == ResticFixture.size(first))
        #expect(c1.durationMs > 0)
        let snaps = try await repo.snapshots(tags: [ResticCopier.toolTag])
        #expect(snaps.count == 1)
        let s = try #require(snaps.first)
        #expect(s.id.hasPrefix(c1.snapshotID))
        #expect(s.hostname == ResticFixture.host)
        #expect(s.paths == ["/maas-backup-day1.tar"])
        #expect(Set(s.tags) == ["maas-snapshot-backup", "timer", "maas-3.4.0", "archive=maas-backup-day1"])
        #expect(try await repo.snapshots(tags: ["pre-upgrade"]).isEmpty, "the tag filter filters")

        // What restic holds is the uncompressed tar, byte for byte.
        let gunzipped = try await fx.gunzip(first)
        #expect(c1.uncompressedBytes == ResticFixture.size(gunzipped))
        #expect(try ResticFixture.sameBytes(try await fx.dump(repo, s.id, "maas-backup-day1"), gunzipped))

        // The next day's archive of unchanged data adds almost nothing.
        let before = try await repo.stats()
        let second = try fx.makeArchive("maas-backup-day2", of: tree)
        let c2 = try await copier.copy(archive: second, kind: .preUpgrade, maasVersion: "3.4.0", host: ResticFixture.host)
        let after = try await repo.stats()
        print("restic raw size after the first copy: \(before.totalSize) bytes; after a second copy of the same data: \(after.totalSize) bytes (+\(after.totalSize - before.totalSize))")
        #expect(before.totalSize > 3 << 20, "the first copy stored the data")
        #expect(after.totalSize - before.totalSize < before.totalSize / 10, "the second copy adds under 10%")
        #expect(try ResticFixture.sameBytes(try await fx.dump(repo, c2.snapshotID, "maas-backup-day2"), try await fx.gunzip(second)))

        #expect(ResticFixture.locks(repoPath).isEmpty, "no lock is left behind")
    }

    @Test func retentionForgetPruneAndCheck() async throws {
        let fx = try ResticFixture("retention")
        defer { fx.cleanup() }
        let repoPath = fx.dir + "/repo"
        let repo = try fx.repository(repoPath)
        try await repo.initialize()
        let tree = try fx.makeTree("tree", files: 4)
        let copier = ResticCopier(repository: repo)
        for (day, kind) in [(1, ResticCopier.Kind.timer), (2, .preUpgrade), (3, .manual)] {
            let archive = try fx.makeArchive("maas-backup-day\(day)", of: tree)
            _ = try await copier.copy(archive: archive, kind: kind, maasVersion: "3.4.0", host: ResticFixture.host)
        }
        #expect(try await repo.snapshots(tags: [ResticCopier.toolTag]).count == 3)
        // Retention. The remote retention with keep 1, keep_pre_upgrade 0 forgets day 1 and keeps
        // day 3 (the newest) and day 2 (the newest pre-upgrade copy, always kept); then forget
        // --keep-last 1 keeps day 3 only.
        let removed = try await copier.applyRetention(RemoteRetention(keep: 1, keepPreUpgrade: 0, maxAgeDays: 90), host: ResticFixture.host)
        #expect(removed.map { $0.tagValue("archive") } == ["maas-backup-day1"])
        #expect(try await repo.snapshots(tags: []).map { $0.tagValue("archive") } == ["maas-backup-day2", "maas-backup-day3"])
        try await repo.forget(keepLast: 1, tags: [ResticCopier.toolTag], host: ResticFixture.host)
        try await repo.prune()
        #expect(try await repo.snapshots(tags: []).map { $0.tagValue("archive") } == ["maas-backup-day3"])
        try await repo.check(readDataSubset: "100%")
        #expect(ResticFixture.locks(repoPath).isEmpty, "no lock is left behind")
    }

    @Test func wrongPasswordAndUninitialisedAreClassified() async throws {
        let fx = try ResticFixture("classify")
        defer { fx.cleanup() }
        let repoPath = fx.dir + "/repo"
        let repo = try fx.repository(repoPath)
        var e = await ResticFixture.backupError { _ = try await repo.snapshots(tags: []) }
        #expect(e?.code == .unavailable)
        #expect(e?.message == "restic snapshots on \(repoPath) failed: the repository is not initialised")
        #expect(e?.hint?.contains("maas-snapshot-backup remote-init") == true)
        // A copy says the same (restic's error, not the broken pipe the gunzip thread then sees).
        let archive = try fx.makeArchive("maas-x", of: try fx.makeTree("tree", files: 2))
        e = await ResticFixture.backupError {
            _ = try await ResticCopier(repository: repo).copy(archive: archive, kind: .timer, maasVersion: nil, host: ResticFixture.host)
        }
        #expect(e?.message == "restic backup on \(repoPath) failed: the repository is not initialised")

        try await repo.initialize()
        let wrong = try fx.repository(repoPath, passwordFile: fx.wrongPasswordFile)
        e = await ResticFixture.backupError { _ = try await wrong.snapshots(tags: []) }
        #expect(e?.code == .config)
        #expect(e?.message.contains("wrong password") == true, "\(e?.description ?? "no error")")
        #expect(e?.description.contains("not the password") == false)

        // A password file others can read is refused before restic runs.
        chmod(fx.passwordFile, 0o644)
        #expect(throws: BackupError.self) { _ = try fx.repository(repoPath) }
    }

    @Test func aDamagedArchiveSavesNoSnapshot() async throws {
        let fx = try ResticFixture("truncated")
        defer { fx.cleanup() }
        let repoPath = fx.dir + "/repo"
        let repo = try fx.repository(repoPath)
        try await repo.initialize()
        let good = try fx.makeArchive("maas-good", of: try fx.makeTree("tree"))
        let bytes = try Data(contentsOf: URL(fileURLWithPath: good))

        let truncated = fx.dir + "/archives/maas-truncated.tar.gz"
        try bytes.prefix(bytes.count * 2 / 3).write(to: URL(fileURLWithPath: truncated))
        var e = await ResticFixture.backupError {
            _ = try await ResticCopier(repository: repo).copy(archive: truncated, kind: .timer, maasVersion: nil, host: ResticFixture.host)
        }
        #expect(e?.code == .dataError)
        #expect(e?.message == "\(truncated) is damaged: the gzip stream ends early (truncated); nothing was copied")

        var corrupt = bytes
        corrupt[corrupt.count - 6] ^= 0xff  // in the trailer's CRC-32: every byte decompresses, the check fails
        let badCRC = fx.dir + "/archives/maas-badcrc.tar.gz"
        try corrupt.write(to: URL(fileURLWithPath: badCRC))
        e = await ResticFixture.backupError {
            _ = try await ResticCopier(repository: repo).copy(archive: badCRC, kind: .timer, maasVersion: nil, host: ResticFixture.host)
        }
        #expect(e?.code == .dataError)
        #expect(e?.message.contains("gzip CRC-32 mismatch") == true, "\(e?.description ?? "no error")")

        #expect(try await repo.snapshots(tags: []).isEmpty, "a partial stream never becomes a snapshot")
        // Not even one forgotten afterwards: restic writes its index only when it completes a backup.
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: repoPath + "/index")) ?? ["?"]).isEmpty,
                "restic was stopped before it completed a snapshot")
        #expect(ResticFixture.locks(repoPath).isEmpty, "the interrupted restic removed its lock")
        // The repository is fine afterwards.
        _ = try await ResticCopier(repository: repo).copy(archive: good, kind: .timer, maasVersion: nil, host: ResticFixture.host)
        #expect(try await repo.snapshots(tags: []).count == 1)
    }

    @Test func aKilledCopyLeavesAStaleLockTheNextRunRemoves() async throws {
        let fx = try ResticFixture("sigkill")
        defer { fx.cleanup() }
        let repoPath = fx.dir + "/repo"
        let repo = try fx.repository(repoPath)
        try await repo.initialize()
        let good = try fx.makeArchive("maas-good", of: try fx.makeTree("tree"))
        let bytes = try Data(contentsOf: URL(fileURLWithPath: good))

        // The archive arrives through a FIFO: half of it, then nothing until restic is killed, so
        // restic is certainly mid-stream.
        let fifo = fx.dir + "/archives/maas-slow.tar.gz"
        #expect(mkfifo(fifo, 0o600) == 0)
        let release = DispatchSemaphore(value: 0)
        let writer = Thread {
            let fd = open(fifo, O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else { return }
            signal(SIGPIPE, SIG_IGN)
            bytes.prefix(bytes.count / 2).withUnsafeBytes { _ = write(fd, $0.baseAddress, $0.count) }
            release.wait()
            close(fd)
        }
        writer.start()
        let copy = Task {
            try await ResticCopier(repository: repo).copy(archive: fifo, kind: .timer, maasVersion: nil, host: ResticFixture.host)
        }
        var killed = false
        for _ in 0..<200 where !killed {
            try await Task.sleep(for: .milliseconds(50))
            // This test's restic only (other suites run restic beside it): the one on this repository.
            let environOf = { (pid: Int32) in (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/environ"))).map { String(decoding: $0, as: UTF8.self) } ?? "" }
            if !ResticFixture.locks(repoPath).isEmpty,
               let pid = ResticFixture.children(named: "restic").first(where: { environOf($0).contains("RESTIC_REPOSITORY=\(repoPath)\u{0}") }) {
                // Secrets and the repository reach restic through its environment, never argv; the
                // password file through our checked descriptor (/proc/<pid>/fd/N), never its name.
                let argv = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))).map { String(decoding: $0, as: UTF8.self) } ?? ""
                let environ = environOf(pid)
                #expect(argv.contains("--stdin-filename") && !argv.contains(repoPath) && !argv.contains(ResticFixture.password))
                #expect(environ.contains("RESTIC_PASSWORD_FILE=/proc/") && !environ.contains(fx.passwordFile) && environ.contains("RESTIC_REPOSITORY=\(repoPath)"))
                #expect(!environ.contains(ResticFixture.password))
                killed = kill(pid, SIGKILL) == 0
            }
        }
        release.signal()
        #expect(killed, "restic was seen holding its lock and killed")
        let e = await ResticFixture.backupError { _ = try await copy.value }
        #expect(e?.message.contains("restic was killed") == true, "\(e?.description ?? "no error")")
        #expect(!ResticFixture.locks(repoPath).isEmpty, "the killed restic left its lock")
        #expect(try await repo.snapshots(tags: []).isEmpty)

        // The next copy works, and so does an operation that needs the repository to itself
        // (forget), after the driver's `restic unlock`.
        _ = try await ResticCopier(repository: repo).copy(archive: good, kind: .timer, maasVersion: nil, host: ResticFixture.host)
        try await repo.forget(keepLast: 1, tags: [ResticCopier.toolTag], host: ResticFixture.host)
        #expect(ResticFixture.locks(repoPath).isEmpty, "the stale lock is gone")
        #expect(try await repo.snapshots(tags: []).count == 1)
    }
}
