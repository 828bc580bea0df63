import ArgumentParser
import Foundation
import MaasBackupCore
#if canImport(Glibc)
import Glibc
#endif

/// Shared by the apt and dpkg hooks: skip switches, config, and the backup with the old .debs saved.
enum HookSupport {
    /// MAAS_SNAPSHOT_BACKUP_SKIP=1 lets one package change go on without a backup (the only documented
    /// spelling; MAAS_SNAPSHOT_BACKUP_HOOK=skip, which the hook scripts of 0.1.0 read, still works).
    static func skipRequested(_ env: [String: String]) -> Bool {
        env["MAAS_SNAPSHOT_BACKUP_SKIP"].map { ["1", "yes", "true"].contains($0.lowercased()) } == true
            || env["MAAS_SNAPSHOT_BACKUP_HOOK"] == "skip"
    }

    static func log(_ s: String) { Output.err(s) }

    /// The config, or one line saying how to fix it or skip the backup.
    static func loadConfig(_ path: String?) throws -> Config {
        do { return try Config.load(path: path) } catch let e as BackupError {
            log("maas-snapshot-backup: error: \(e.description); fix the config, or set MAAS_SNAPSHOT_BACKUP_SKIP=1 to go on without a backup")
            throw ArgumentParser.ExitCode(e.code.rawValue)
        }
    }

    /// The backup a hook takes: reason from the hook, the installed MAAS .debs kept beside it.
    static func backup(config: Config) -> PackageHookRunner.Backup {
        { reason in
            if let why = await RegionLayout.snapReason(config, services: try? Systemctl()) {
                log("maas-snapshot-backup: MAAS is installed as a snap here (\(why)): no backup (this tool handles the deb-installed MAAS only; use `snap save maas`); the change goes on")
                return
            }
            if let why = RegionLayout.vaultCredentialsMissing(config) {
                log("maas-snapshot-backup: warning: no backup before this change: \(why); to back up before upgrades, set database.user, database.name and database.password_file in the config; the change goes on")
                return
            }
            guard config.hasMaasRegion else {
                log("maas-snapshot-backup: no MAAS region on this host (no \(config.live("/etc/maas/regiond.conf")), no database in the config): nothing to back up")
                return
            }
            let installed = await InstalledPackages.installed(root: config.root)
            let work = try PrivateDir.makeTemporary()
            defer { work.remove() }
            let (debs, missing) = await DebSaver.collect(installed: installed, workDir: work.path)
            if !missing.isEmpty {
                log("maas-snapshot-backup: warning: no .deb could be saved for \(missing.joined(separator: ", ")); a rollback would need them from a repository")
            }
            let r = try await runBackup(config: config, reason: reason, snapshot: nil, dryRun: false, lockTimeout: 300,
                                        json: false, debs: debs)
            log("maas-snapshot-backup: backup written: \(r.archive ?? "-") (MAAS stopped \(Int(r.downtimeMs)) ms)")
            if let p = r.pruned, !p.removed.isEmpty {
                log("maas-snapshot-backup: the retention removed \(p.removed.count) old backup(s): \(p.removed.map { ($0.archive as NSString).lastPathComponent }.joined(separator: ", "))")
            }
            for w in r.warnings + r.failedSteps { log("maas-snapshot-backup: warning: \(w)") }
        }
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
