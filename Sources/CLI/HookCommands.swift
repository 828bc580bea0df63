import ArgumentParser
import Foundation
import MaasBackupCore
#if canImport(Glibc)
import Glibc
#endif

/// Shared by the apt and dpkg hooks: the config, and the backup they take (MSBPreUpgrade).
enum HookSupport {
    static func skipRequested(_ env: [String: String]) -> Bool { PreUpgradeBackup.skipRequested(env) }

    static func log(_ level: LogLevel, _ s: String) { Output.log(level, s) }

    /// The config's policy, read only when the hook needs it (a MAAS package changes).
    static func policy(_ path: String?) -> PackageHookRunner.LoadPolicy {
        {
            let cfg = try Config.load(path: path)
            try TrustedFolder.check(cfg.stateDir, key: "state_dir")
            return PackageHookRunner.Policy(block: cfg.hook.onFailure == .block, backup: backup(config: cfg))
        }
    }

    static func backup(config: Config) -> PackageHookRunner.Backup {
        PreUpgradeBackup.backup(config: config, template: backupOptions(json: false), log: Output.sink)
    }
}

struct AptHook: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apt-hook",
        abstract: "apt's DPkg::Pre-Install-Pkgs hook: back up before a MAAS package changes.",
        discussion: "Reads apt's Version 3 hook input from APT_HOOK_INFO_FD. Set MAAS_SNAPSHOT_BACKUP_SKIP=1 to go on without a backup.")
    @Option(name: .long, help: "Configuration file.") var config: String?

    func run() async throws {
        let env = ProcessInfo.processInfo.environment
        if HookSupport.skipRequested(env) {
            HookSupport.log(.notice, "maas-snapshot-backup: MAAS_SNAPSHOT_BACKUP_SKIP is set: no backup before this package change")
            return
        }
        let rc = await PackageHookRunner.apt(environment: env, log: Output.sink,
                                             policy: HookSupport.policy(config))
        if rc != 0 { throw ArgumentParser.ExitCode(rc) }
    }
}

struct DpkgHook: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dpkg-hook",
        abstract: "dpkg's pre-invoke hook: back up before `dpkg -i` changes a MAAS package outside apt.")
    @Option(name: .long, help: "Configuration file.") var config: String?

    func run() async throws {
        let env = ProcessInfo.processInfo.environment
        if HookSupport.skipRequested(env) { return }
        let rc = await PackageHookRunner.dpkg(environment: env, log: Output.sink,
                                              policy: HookSupport.policy(config))
        if rc != 0 {
            HookSupport.log(.error, "maas-snapshot-backup: to go on without a backup: MAAS_SNAPSHOT_BACKUP_SKIP=1 dpkg -i ...")
            throw ArgumentParser.ExitCode(rc)
        }
    }
}
