import Foundation
import MSBKit

/// What the restic driver makes of the `remote:` section.
extension RemoteConfig {
    /// The retention of the copies: this section's values, the local ones where absent.
    public func retention(local: Config.Retention) -> RemoteRetention {
        RemoteRetention(keep: retention.keep ?? local.keep, keepPreUpgrade: retention.keepPreUpgrade ?? local.keepPreUpgrade,
                        maxAgeDays: retention.maxAgeDays ?? local.maxAgeDays)
    }

    /// What the restic driver needs, after checking the secret files: the password file and the
    /// env file must be regular files owned by root (or the caller) with mode 0600 or stricter;
    /// the env file's keys must be [A-Z_][A-Z0-9_]*. restic's cache goes to STATE_DIR/restic-cache.
    public func settings(stateDir: String, executable: String? = nil) throws -> ResticSettings {
        try ResticSecrets.checkPrivateFile(passwordFile, key: "remote.password_file")
        let env = try envFile.map { try ResticSecrets.readEnvFile($0, key: "remote.env_file") } ?? [:]
        return ResticSettings(repository: repository, passwordFile: passwordFile, environment: env, options: options,
                              cacheDir: Config.join(stateDir, "restic-cache"), executable: executable)
    }
}
