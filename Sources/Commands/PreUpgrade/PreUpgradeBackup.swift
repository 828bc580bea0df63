import Foundation
import MSBKit
import MSBBackupSet
import MSBServices
import MSBPackages
import MSBRegion
import MSBPackageHooks
import MSBBackup

/// The backup the apt and dpkg hooks take before a MAAS package changes: the policy of when not
/// to back up (skip switch, snap, Vault without credentials, no region), the installed MAAS .debs
/// kept beside the archive for a rollback, and a pruning first when space is short.
public enum PreUpgradeBackup {
    /// MAAS_SNAPSHOT_BACKUP_SKIP=1 (yes, true, any case) lets one package change go on without a backup.
    public static func skipRequested(_ env: [String: String]) -> Bool {
        env["MAAS_SNAPSHOT_BACKUP_SKIP"].map { ["1", "yes", "true"].contains($0.lowercased()) } == true
    }

    /// The hook's backup: `template` carries what the command line set (log, progress, the guard's
    /// executable); the reason comes from the hook. Every line goes to `log`.
    public static func backup(config: Config, template: BackupOptions, log: @escaping LogSink) -> PackageHookRunner.Backup {
        { reason in
            if let why = await RegionLayout.snapReason(config, services: try? Systemctl()) {
                log(.info, "maas-snapshot-backup: MAAS is installed as a snap here (\(why)): no backup (this tool handles the deb-installed MAAS only; use `snap save maas`); the change goes on")
                return
            }
            if let why = RegionLayout.vaultCredentialsMissing(config) {
                log(.warning, "maas-snapshot-backup: warning: no backup before this change: \(why); to back up before upgrades, \(RegionLayout.vaultCredentialsHint); the change goes on")
                return
            }
            guard config.hasMaasRegion else {
                log(.info, "maas-snapshot-backup: no MAAS region on this host (no \(config.live("/etc/maas/regiond.conf")), no database in the config): nothing to back up")
                return
            }
            let installed = await InstalledPackages.installed(root: config.root)
            let work = try PrivateDir.makeTemporary()
            defer { work.remove() }
            let (debs, missing) = await DebSaver.collect(installed: installed, workDir: work.path)
            if !missing.isEmpty {
                log(.warning, "maas-snapshot-backup: warning: no .deb could be saved for \(missing.joined(separator: ", ")); a rollback would need them from a repository")
            }
            var opts = template
            opts.reason = reason
            opts.debsToSave = debs
            opts.lockTimeout = 300
            let r = try await BackupPipeline(config: config, options: opts).run()
            log(.info, "maas-snapshot-backup: backup written: \(r.archive ?? "-") (MAAS stopped \(Int(r.downtimeMs)) ms)")
            if let p = r.pruned, !p.removed.isEmpty {
                log(.info, "maas-snapshot-backup: the retention removed \(p.removed.count) old backup(s): \(p.removed.map { ($0.archive as NSString).lastPathComponent }.joined(separator: ", "))")
            }
            for w in r.warnings + r.failedSteps { log(.warning, "maas-snapshot-backup: warning: \(w)") }
        }
    }
}
