import Foundation
import MaasBackupCore
import Testing

/// restic's failures, classified from the stderr restic 0.14.0 (Debian 12) really prints; the
/// retention of the copies; the parsing of `restic snapshots --json`.
@Suite struct ResticErrorTests {
    // Captured from restic 0.14.0 on this project's test servers (see Tests/Fixtures/restic-servers.sh).
    static let real: [(String, Int32, ResticFailure)] = [
        ("Fatal: unable to open config file: stat /tmp/rx/repo/config: no such file or directory\nIs there a repository at the following location?\n/tmp/rx/repo\n", 1, .notInitialized),
        ("Fatal: unable to open config file: Lstat: file does not exist\nIs there a repository at the following location?\nsftp:root@127.0.0.1:/tmp/rx/sftprepo\n", 1, .notInitialized),
        ("Fatal: unable to open config file: <config/> does not exist\nIs there a repository at the following location?\nrest:http://127.0.0.1:22445/\n", 1, .notInitialized),
        ("Fatal: wrong password or no key found\n", 1, .wrongPassword),
        ("Fatal: create repository at /tmp/rx/repo failed: config file already exists\n\n", 1, .alreadyInitialized),
        ("subprocess ssh: ssh: connect to host 127.0.0.1 port 22444: Connection refused\nFatal: unable to open repository at sftp:root@127.0.0.1:/tmp/rx/sftprepo: unable to start the sftp session, error: read |0: file already closed\n", 1, .unreachable),
        ("subprocess ssh: ssh: connect to host 127.0.0.1 port 2999: Connection refused\nFatal: unable to open repository at sftp:root@127.0.0.1:/tmp/x: unable to start the sftp session, error: EOF\n", 1, .unreachable),
        // A REST server that is down looks like a missing config file: unreachable must win.
        ("Fatal: unable to open config file: client.Head: Head \"http://127.0.0.1:2998/config\": dial tcp 127.0.0.1:2998: connect: connection refused\nIs there a repository at the following location?\nrest:http://127.0.0.1:2998/\n", 1, .unreachable),
        ("using temporary cache in /tmp/rx/cache/restic-check-cache-1701842557\ncreate exclusive lock for repository\nunable to create lock in backend: repository is already locked by PID 8928 on vm by root (UID 0, GID 0)\nlock was created at 2026-11-29 09:42:41 (7.521193684s ago)\nstorage ID 06082e22\nthe `unlock` command can be used to remove stale locks\n", 1, .locked),
        ("Fatal: unable to save snapshot: write small/repo/data/ca/ca08d0d0e9020ac9547a0c023c74c19abe99bf62d94dac5d6ac61c5391e643c6-tmp-3939590018: no space left on device\n", 1, .diskFull),
        ("\u{1b}[2Ksignal interrupt received, cleaning up\n", 130, .interrupted),
        ("", 137, .killed),
        ("", 143, .killed),
        ("Fatal: something new\n", 1, .other),
    ]

    @Test func realStderrIsClassified() {
        for (text, status, kind) in Self.real {
            #expect(ResticFailure.classify(status: status, stderr: text) == kind, "\(text)")
        }
    }

    @Test func eachKindIsOneLineWithAHintAndItsExitCode() {
        let rep = ResticErrorReporter(repository: "sftp:root@127.0.0.1:/srv/r", secrets: [])
        let expected: [ResticFailure: (ExitCode, String)] = [
            .notInitialized: (.unavailable, "remote-init"),
            .wrongPassword: (.config, "remote.password_file"),
            .unreachable: (.unavailable, "network"),
            .locked: (.locked, "restic unlock"),
            .diskFull: (.cantCreate, "free space"),
        ]
        for (text, status, kind) in Self.real {
            let e = rep.error("restic snapshots", status: status, stderr: text)
            #expect(!e.description.contains("\n"), "one line: \(e.description)")
            #expect(e.message.hasPrefix("restic snapshots on sftp:root@127.0.0.1:/srv/r failed: "))
            #expect(e.hint?.isEmpty == false)
            if let (code, hintWord) = expected[kind] {
                #expect(e.code == code, "\(kind)")
                #expect(e.hint?.contains(hintWord) == true, "\(kind): \(e.hint ?? "")")
            }
        }
        let unreachable = rep.error("restic init", status: 1, stderr: Self.real[5].0)
        #expect(unreachable.message.contains("unable to open repository at sftp:root@127.0.0.1:/tmp/rx/sftprepo: unable to start the sftp session"),
                "restic's Fatal line is kept: \(unreachable.message)")
    }

    @Test func secretsNeverReachAMessage() {
        let rep = ResticErrorReporter(repository: "rest:https://backup:hunter22@vault.example:8000/maas", secrets: ["s3cr3t-pw", "AKIAXYZSECRET"])
        #expect(rep.repository == "rest:https://backup:***@vault.example:8000/maas")
        let e = rep.error("restic backup", status: 1,
                          stderr: "Fatal: Head \"https://backup:hunter22@vault.example:8000/maas/config\": key AKIAXYZSECRET, pw s3cr3t-pw rejected\n")
        #expect(!e.description.contains("hunter22"))
        #expect(!e.description.contains("AKIAXYZSECRET"))
        #expect(!e.description.contains("s3cr3t-pw"))
        #expect(e.description.contains("https://backup:***@vault.example:8000/maas/config"))
        #expect(ResticErrorReporter.maskURLPassword("s3:https://s3.example/bucket") == "s3:https://s3.example/bucket")
        #expect(ResticErrorReporter.maskURLPassword("sftp:user@host:/p") == "sftp:user@host:/p")
    }

    static func snap(_ id: String, daysAgo: Double, pre: Bool = false, now: Date) -> RemoteSnapshot {
        RemoteSnapshot(id: id, shortID: String(id.prefix(8)), time: now.addingTimeInterval(-daysAgo * 86400), hostname: "h",
                       tags: ["maas-snapshot-backup", pre ? "pre-upgrade" : "timer"], paths: ["/\(id).tar"])
    }

    @Test func retentionKeepsTheNewestOfEachKindAndDropsTheTooOld() {
        let now = Date()
        let snaps = (0..<6).map { Self.snap("o\($0)", daysAgo: Double($0), now: now) }
            + (0..<3).map { Self.snap("p\($0)", daysAgo: Double($0) + 0.5, pre: true, now: now) }
            + [Self.snap("old", daysAgo: 400, now: now)]
        let plan = RemoteRetention.plan(snaps, retention: RemoteRetention(keep: 3, keepPreUpgrade: 1, maxAgeDays: 90), now: now)
        #expect(Set(plan.keep.map(\.id)) == ["o0", "o1", "o2", "p0"])
        #expect(Set(plan.remove.map(\.id)) == ["o3", "o4", "o5", "p1", "p2", "old"])
        // The newest copy stays even when it is too old; max_age_days 0 is no limit.
        let lone = [Self.snap("a", daysAgo: 500, now: now), Self.snap("b", daysAgo: 600, now: now)]
        #expect(RemoteRetention.plan(lone, retention: RemoteRetention(keep: 5, keepPreUpgrade: 0, maxAgeDays: 90), now: now).keep.map(\.id) == ["a"])
        #expect(RemoteRetention.plan(lone, retention: RemoteRetention(keep: 5, keepPreUpgrade: 0, maxAgeDays: 0), now: now).remove.isEmpty)
    }

    @Test func snapshotsJSONOfRestic014Parses() throws {
        let json = """
            [{"time":"2026-11-29T09:42:16.126823239Z","tree":"b35c","paths":["/a.tar"],"hostname":"h","username":"root","tags":["x","archive=a"],"id":"b1ff8b6ae6abac4ba1ba56301e9212d8975464c7a56c6276c0853661e315da93","short_id":"b1ff8b6a"},
             {"time":"2026-11-29T10:42:16+01:00","tree":"c0","paths":["/b.tar"],"hostname":"h","username":"root","id":"dd00cc216f36771f3b9a513798d85379c0198949a26a12c9fd4319f42ba899ed","short_id":"dd00cc21"}]
            """
        let s = try ResticRepository.parseSnapshots(json)
        #expect(s.count == 2)
        #expect(s.map(\.shortID) == ["dd00cc21", "b1ff8b6a"], "oldest first")
        let a = s[1], b = s[0]
        #expect(a.shortID == "b1ff8b6a" && a.tags == ["x", "archive=a"] && a.paths == ["/a.tar"] && a.tagValue("archive") == "a")
        #expect(b.tags.isEmpty)
        #expect(abs(a.time.timeIntervalSince1970 - 1_795_945_336.126) < 0.01)
        #expect(abs(b.time.timeIntervalSince(a.time) - (-0.126)) < 0.01, "an offset is honoured")
        #expect(try ResticRepository.parseSnapshots("null\n").isEmpty)
        #expect(throws: BackupError.self) { try ResticRepository.parseSnapshots("{\"oops\":1}") }
    }

    @Test func copyTags() throws {
        #expect(ResticCopier.tags(kind: .preUpgrade, maasVersion: "1:3.5.0-15000 ubuntu", archiveName: "maas-x")
                == ["maas-snapshot-backup", "pre-upgrade", "maas-1:3.5.0-15000_ubuntu", "archive=maas-x"])
        #expect(ResticCopier.tags(kind: .timer, maasVersion: nil, archiveName: "n") == ["maas-snapshot-backup", "timer", "archive=n"])
        #expect(ResticCopier.tags(kind: .manual, maasVersion: "", archiveName: "n") == ["maas-snapshot-backup", "manual", "archive=n"])
        // The copy's kind from a backup's recorded reason (CopyPipeline): the daily unit's is timer.
        #expect(ResticCopier.Kind(BackupReason(recorded: "scheduled")) == .timer)
        #expect(ResticCopier.Kind(BackupReason(recorded: "pre-upgrade maas-region-controller 3.4 -> 3.5")) == .preUpgrade)
        #expect(ResticCopier.Kind(BackupReason(recorded: "before the switch")) == .manual)
        #expect(throws: BackupError.self) { try ResticCopier.name(ofArchive: "/x/notes.txt") }
        #expect(try ResticCopier.name(ofArchive: "/x/maas-2026.tar.gz") == "maas-2026")
    }
}
