import ArgumentParser
import Foundation
import MaasBackupCore
#if canImport(Glibc)
import Glibc
#endif

/// Shared by the apt and dpkg hooks: the config, and the backup they take (MSBPreUpgrade).
enum HookSupport {
    static func skipRequested(_ env: [String: String]) -> Bool { PreUpgradeBackup.skipRequested(env) }

    static func log(_ s: String) { Output.err(s) }

    /// The config, or one line saying how to fix it or skip the backup.
    static func loadConfig(_ path: String?) throws -> Config {
        do { return try Config.load(path: path) } catch let e as BackupError {
            log("maas-snapshot-backup: error: \(e.description); fix the config, or set MAAS_SNAPSHOT_BACKUP_SKIP=1 to go on without a backup")
            throw ArgumentParser.ExitCode(e.code.rawValue)
        }
    }

    static func backup(config: Config) -> PackageHookRunner.Backup {
        PreUpgradeBackup.backup(config: config, template: backupOptions(json: false), log: { log($0) })
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
            HookSupport.log("maas-snapshot-backup: MAAS_SNAPSHOT_BACKUP_SKIP is set: no backup before this package change")
            return
        }
        let cfg = try HookSupport.loadConfig(config)
        let rc = await PackageHookRunner.apt(environment: env, block: cfg.hook.onFailure == .block,
                                             log: { HookSupport.log($0) }, backup: HookSupport.backup(config: cfg))
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
        let cfg = try HookSupport.loadConfig(config)
        let rc = await PackageHookRunner.dpkg(environment: env, block: cfg.hook.onFailure == .block,
                                              log: { HookSupport.log($0) }, backup: HookSupport.backup(config: cfg))
        if rc != 0 {
            HookSupport.log("maas-snapshot-backup: to go on without a backup: MAAS_SNAPSHOT_BACKUP_SKIP=1 dpkg -i ...")
            throw ArgumentParser.ExitCode(rc)
        }
    }
}
