import Foundation
import MaasBackupCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The `remote:` section: parsing, refusals, and the secret files' checks (issue 16).
@Suite struct RemoteConfigTests {
    /// A private folder with a password file of `mode` (and an env file holding `env`).
    final class Secrets {
        let dir: String
        var password: String { dir + "/pw" }
        var env: String { dir + "/restic.env" }
        init(mode: mode_t = 0o600, env envText: String? = nil, envMode: mode_t = 0o600) throws {
            dir = NSTemporaryDirectory() + "msb-remote-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try "s3cr3t-password\n".write(toFile: password, atomically: false, encoding: .utf8)
            chmod(password, mode)
            if let envText {
                try envText.write(toFile: env, atomically: false, encoding: .utf8)
                chmod(env, envMode)
            }
        }
        deinit { try? FileManager.default.removeItem(atPath: dir) }
    }

    static func message(_ body: () throws -> Any) -> BackupError? {
        do { _ = try body(); return nil } catch let e as BackupError { return e } catch { return nil }
    }

    @Test func everyKeyParses() throws {
        let c = try Config.parse(yaml: """
            retention: {keep: 9, keep_pre_upgrade: 2, max_age_days: 30}
            remote:
              repository: sftp:backup@vault.example:/srv/restic/maas
              password_file: /etc/msb/restic-password
              env_file: /etc/msb/restic.env
              copy: after-backup
              options: ["sftp.command=ssh -p 2222 backup@vault.example -s sftp", "sftp.connections=2"]
              retention: {keep: 30, max_age_days: 365}
            """)
        let r = try #require(c.remote)
        #expect(r.repository == "sftp:backup@vault.example:/srv/restic/maas")
        #expect(r.passwordFile == "/etc/msb/restic-password")
        #expect(r.envFile == "/etc/msb/restic.env")
        #expect(r.copy == .afterBackup)
        #expect(r.options == ["sftp.command=ssh -p 2222 backup@vault.example -s sftp", "sftp.connections=2"])
        // Absent values are the local retention's.
        #expect(r.retention(local: c.retention) == RemoteRetention(keep: 30, keepPreUpgrade: 2, maxAgeDays: 365))
    }

    @Test func defaultsAreOffAndTheLocalRetention() throws {
        #expect(try Config.parse(yaml: "").remote == nil)
        #expect(try Config.parse(yaml: "remote:\n").remote == nil, "an empty section is no remote")
        let c = try Config.parse(yaml: "remote: {repository: /srv/restic, password_file: /etc/pw}\n")
        let r = try #require(c.remote)
        #expect(r.copy == .off)
        #expect(r.options.isEmpty && r.envFile == nil)
        #expect(r.retention(local: c.retention) == RemoteRetention(keep: 7, keepPreUpgrade: 3, maxAgeDays: 90))
    }

    @Test(arguments: [
        ("remote: {repository: /r, password_file: /p, colour: blue}", "unknown key 'remote.colour'"),
        ("remote: {repository: /r, password_file: /p, retention: {keep_last: 3}}", "unknown key 'remote.retention.keep_last'"),
        ("remote: {password_file: /p}", "remote.repository: is missing"),
        ("remote: {repository: /r}", "remote.password_file: is missing"),
        ("remote: {repository: '', password_file: /p}", "remote.repository: is empty"),
        ("remote: {repository: '-o x', password_file: /p}", "remote.repository: is not a restic repository string"),
        ("remote: {repository: /r, password_file: pw}", "remote.password_file: 'pw' is not an absolute path"),
        ("remote: {repository: /r, password_file: /p, env_file: ../env}", "remote.env_file: '../env' is not an absolute path"),
        ("remote: {repository: /r, password_file: /p, copy: always}", "remote.copy: 'always' is not allowed"),
        ("remote: {repository: /r, password_file: /p, options: [sftp.command]}", "remote.options: 'sftp.command' is not a restic option"),
        ("remote: {repository: /r, password_file: /p, options: sftp.command=x}", "remote.options: must be a list"),
        ("remote: {repository: /r, password_file: /p, retention: {keep: 0}}", "remote.retention.keep: '0' is not a whole number"),
        ("remote: [a, b]", "remote: must be a mapping"),
    ])
    func refusals(yaml: String, expected: String) {
        let e = Self.message { try Config.parse(yaml: yaml, source: "t.yaml") }
        #expect(e?.code == .config, "\(yaml) must be refused")
        #expect(e?.message.contains(expected) == true, "\(e?.description ?? "no error") should say \(expected)")
        #expect(e?.message.contains("t.yaml line") == true, "the message names the line")
    }

    @Test func aRestURLPasswordIsNotRepeatedInTheMessage() {
        let e = Self.message { try Config.parse(yaml: "remote: {repository: \"-rest:https://u:hunter22@h/\", password_file: /p}") }
        #expect(e != nil)
        #expect(e?.description.contains("hunter22") == false)
    }

    @Test func settingsAcceptAPrivatePasswordAndEnvFile() throws {
        let s = try Secrets(env: "# back-end credentials\nAWS_ACCESS_KEY_ID=AKIAEXAMPLE\nAWS_SECRET_ACCESS_KEY=\"abc def\"\n\nB2_ACCOUNT_ID='x=y'\n")
        var r = RemoteConfig(repository: "s3:s3.example/bucket", passwordFile: s.password)
        r.envFile = s.env
        let st = try r.settings(stateDir: "/var/lib/msb")
        #expect(st.passwordFile == s.password)
        #expect(st.environment == ["AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "abc def", "B2_ACCOUNT_ID": "x=y"])
        #expect(st.cacheDir == "/var/lib/msb/restic-cache")
    }

    @Test(arguments: [mode_t(0o640), 0o604, 0o644, 0o660])
    func aPasswordFileOthersCanReadIsRefused(mode: mode_t) throws {
        let s = try Secrets(mode: mode)
        let e = Self.message { try RemoteConfig(repository: "/r", passwordFile: s.password).settings(stateDir: "/s") }
        #expect(e?.code == .config)
        #expect(e?.message == "remote.password_file \(s.password) has mode \(String(mode, radix: 8)): group or others can use it")
        #expect(e?.hint == "chmod 600 \(s.password)")
    }

    @Test func aMissingOrSymlinkedOrForeignPasswordFileIsRefused() throws {
        let s = try Secrets()
        var e = Self.message { try RemoteConfig(repository: "/r", passwordFile: s.dir + "/none").settings(stateDir: "/s") }
        #expect(e?.message == "remote.password_file \(s.dir)/none does not exist")
        symlink(s.password, s.dir + "/link")
        e = Self.message { try RemoteConfig(repository: "/r", passwordFile: s.dir + "/link").settings(stateDir: "/s") }
        #expect(e?.message.hasSuffix("is a symbolic link") == true)
        e = Self.message { try RemoteConfig(repository: "/r", passwordFile: s.dir).settings(stateDir: "/s") }
        #expect(e?.message.hasSuffix("is not a regular file") == true)
        if geteuid() == 0 {
            chown(s.password, 65534, 65534)
            e = Self.message { try RemoteConfig(repository: "/r", passwordFile: s.password).settings(stateDir: "/s") }
            #expect(e?.message == "remote.password_file \(s.password) belongs to uid 65534, not root")
        }
    }

    @Test(arguments: [
        ("aws_access_key_id=x\n", "line 1: 'aws_access_key_id' is not an allowed variable name"),
        ("1KEY=x\n", "line 1: '1KEY' is not an allowed variable name"),
        ("AWS_GOOD=1\nBAD-KEY=2\n", "line 2: 'BAD-KEY' is not an allowed variable name"),
        ("export AWS_KEY=x\n", "'export AWS_KEY' is not an allowed variable name"),
        ("JUST_A_NAME\n", "line 1 is not KEY=VALUE"),
        ("RESTIC_PASSWORD=hunter22\n", "line 1: RESTIC_PASSWORD may not be set here"),
        ("RESTIC_REPOSITORY=/elsewhere\n", "line 1: RESTIC_REPOSITORY may not be set here"),
        ("LD_PRELOAD=/tmp/x.so\n", "line 1: LD_PRELOAD may not be set here"),
        ("AWS_A=1\nAWS_A=2\n", "line 2: AWS_A is given twice"),
        // Only back-end credentials (issue 23): nothing that changes what restic runs or where it connects.
        ("PATH=/tmp/evil\n", "line 1: PATH may not be set here"),
        ("SSH_AUTH_SOCK=/tmp/agent\n", "line 1: SSH_AUTH_SOCK may not be set here"),
        ("AWS_KEY=x\nHTTPS_PROXY=http://evil:3128\n", "line 2: HTTPS_PROXY may not be set here"),
        ("http_proxy=x\n", "'http_proxy' is not an allowed variable name"),
        ("RCLONE_CONFIG_X_TYPE=sftp\n", "line 1: RCLONE_CONFIG_X_TYPE may not be set here"),
        ("AWS_=x\n", "line 1: AWS_ may not be set here"),
    ])
    func envFileRefusals(text: String, expected: String) throws {
        let s = try Secrets(env: text)
        var r = RemoteConfig(repository: "/r", passwordFile: s.password)
        r.envFile = s.env
        let e = Self.message { try r.settings(stateDir: "/s") }
        #expect(e?.code == .config)
        #expect(e?.message.contains(expected) == true, "\(e?.description ?? "no error") should say \(expected)")
        #expect(e?.description.contains("hunter22") == false, "a value is never repeated")
    }

    @Test func anEnvFileOthersCanReadIsRefused() throws {
        let s = try Secrets(env: "AWS_ACCESS_KEY_ID=x\n", envMode: 0o644)
        var r = RemoteConfig(repository: "/r", passwordFile: s.password)
        r.envFile = s.env
        let e = Self.message { try r.settings(stateDir: "/s") }
        #expect(e?.message == "remote.env_file \(s.env) has mode 644: group or others can use it")
    }
}
