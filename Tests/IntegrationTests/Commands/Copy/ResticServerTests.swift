import Foundation
import MaasBackupCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The restic driver over the network: SFTP through a throwaway sshd, REST through `rclone serve
/// restic`, S3 through moto's server (a virtualenv made by scripts/install-deps.sh), all on
/// 127.0.0.1 and started by Tests/Fixtures/restic-servers.sh.
@Suite("restic, SFTP, REST and S3", .serialized, .enabled(if: ResticFixture.skipReason == nil, "\(ResticFixture.skipReason ?? "")"))
struct ResticServerTests {
    static var sshdMissing: Bool { !FileManager.default.isExecutableFile(atPath: "/usr/sbin/sshd") }
    static var rcloneMissing: Bool { Command.find("rclone", extraDirs: ["/usr/bin"]) == nil }
    static let motoVenv = ProcessInfo.processInfo.environment["MSB_MOTO_VENV"] ?? "/var/cache/maas-snapshot-backup-tests/venv"
    static var motoMissing: Bool { !FileManager.default.isExecutableFile(atPath: motoVenv + "/bin/moto_server") }

    func roundTrip(_ fx: ResticFixture, _ repo: ResticRepository) async throws {
        #expect(try await repo.initialize() == true)
        let archive = try fx.makeArchive("maas-remote", of: try fx.makeTree("tree", files: 8))
        let c = try await ResticCopier(repository: repo).copy(archive: archive, kind: .manual, maasVersion: "3.5.1", host: ResticFixture.host)
        let snaps = try await repo.snapshots(tags: [ResticCopier.toolTag, "archive=maas-remote"])
        #expect(snaps.count == 1)
        #expect(snaps.first?.id.hasPrefix(c.snapshotID) == true)
        #expect(try ResticFixture.sameBytes(try await fx.dump(repo, c.snapshotID, "maas-remote"), try await fx.gunzip(archive)))
    }

    @Test(.enabled(if: !sshdMissing, "openssh-server is not installed (apt-get install openssh-server)"))
    func sftpCopyRoundTripAndUnreachable() async throws {
        let fx = try ResticFixture("sftp")
        defer { fx.cleanup() }
        let servers = fx.dir + "/servers"
        let port = ResticFixture.freePort(from: 30000 + Int(getpid()) % 10000)
        let up = try TestEnv.sh(["bash", ResticFixture.serversScript, "sshd-up", servers, String(port)])
        try #require(up.status == 0, "sshd did not start: \(up.stderr)")
        let command = try String(contentsOfFile: servers + "/sftp-command", encoding: .utf8).trimmingCharacters(in: .newlines)
        let repository = "sftp:root@127.0.0.1:" + fx.dir + "/sftp-repo"
        let repo = try fx.repository(repository, options: ["sftp.command=" + command])
        try await roundTrip(fx, repo)
        #expect(FileManager.default.fileExists(atPath: fx.dir + "/sftp-repo/config"), "the repository is where sftp put it")

        _ = try TestEnv.sh(["bash", ResticFixture.serversScript, "down", servers])
        let e = await ResticFixture.backupError { _ = try await repo.snapshots(tags: []) }
        #expect(e?.code == .unavailable)
        #expect(e?.message.hasPrefix("restic snapshots on \(repository) failed: the repository is unreachable: ") == true, "\(e?.description ?? "no error")")
        #expect(e?.description.contains(ResticFixture.password) == false)
    }

    @Test(.enabled(if: !rcloneMissing, "rclone is not installed (apt-get install rclone)"))
    func restCopyRoundTrip() async throws {
        let fx = try ResticFixture("rest")
        defer { fx.cleanup() }
        let servers = fx.dir + "/servers"
        let port = ResticFixture.freePort(from: 40000 + Int(getpid()) % 10000)
        let up = try TestEnv.sh(["bash", ResticFixture.serversScript, "rest-up", servers, String(port)])
        try #require(up.status == 0, "rclone serve restic did not start: \(up.stderr)")
        let repo = try fx.repository("rest:http://127.0.0.1:\(port)/")
        try await roundTrip(fx, repo)
        #expect(FileManager.default.fileExists(atPath: servers + "/rest/config"), "the repository is in rclone's folder")
    }

    @Test(.enabled(if: !motoMissing, "moto's S3 server is not installed (scripts/install-deps.sh makes \(motoVenv))"))
    func s3CopyRoundTripAndBadCredentials() async throws {
        let fx = try ResticFixture("s3")
        defer { fx.cleanup() }
        let servers = fx.dir + "/servers"
        let port = ResticFixture.freePort(from: 50000 + Int(getpid()) % 10000)
        let up = try TestEnv.sh(["bash", ResticFixture.serversScript, "s3-up", servers, String(port)])
        defer { _ = try? TestEnv.sh(["bash", ResticFixture.serversScript, "down", servers]) }
        try #require(up.status == 0, "moto_server did not start: \(up.stderr)")
        let repository = "s3:http://127.0.0.1:\(port)/msb-backups"
        // The credentials reach restic only through the environment (remote.env_file's variables).
        let credentials = ["AWS_ACCESS_KEY_ID": "msb-test-key", "AWS_SECRET_ACCESS_KEY": "msb-test-secret", "AWS_DEFAULT_REGION": "us-east-1"]
        let repo = try ResticRepository(ResticSettings(repository: repository, passwordFile: fx.passwordFile, environment: credentials,
                                                       cacheDir: fx.dir + "/state/restic-cache"))
        try await roundTrip(fx, repo)
        let bucket = try TestEnv.sh(["curl", "-sf", "http://127.0.0.1:\(port)/msb-backups?list-type=2&prefix=config"])
        #expect(bucket.stdout.contains("<Key>config</Key>"), "the repository's config object is in the bucket: \(bucket.stdout)")

        // Without credentials restic cannot sign its requests: one classified error, no secret in it.
        let anonymous = try ResticRepository(ResticSettings(repository: repository, passwordFile: fx.passwordFile,
                                                            cacheDir: fx.dir + "/state/restic-cache-anon"))
        let e = await ResticFixture.backupError { _ = try await anonymous.snapshots(tags: []) }
        #expect(e != nil, "restic without S3 credentials failed")
        #expect(e?.description.contains(ResticFixture.password) == false)
        #expect(e?.description.contains("msb-test-secret") == false)
    }
}
