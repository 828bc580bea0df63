import Foundation
import MSBKit
import MSBSnapshot
import MSBDatabase
import MSBServices
import MSBArchive
import MSBPackages
import MSBRegion

/// The region checks of restore and rollback (README "Region layouts"), run in `prepare` before
/// anything changes, and the `maas-region dbupgrade` step after a patch-level version change.
package enum RegionChecks {
    /// What the region checks found: warnings for the plan and the dbupgrade to run, if any.
    package struct Outcome {
        package var warnings: [String] = []
        package var otherRegions: [String] = []
        package var dbUpgrade: String?
        /// The other regions recorded at backup time and those connected now, each with what it needs.
        package var peers: [String] = []
    }

    /// Other regions connected to the database: refused (exit 69) unless `force`, then a warning
    /// that says what it risks. Vault: a warning.
    static package func check(config: Config, target: PostgresTarget, passfile: String?, force: Bool, command: String,
                              manifest: Manifest) throws -> Outcome {
        var out = Outcome()
        // A fresh machine has no MAAS database yet: nobody can be connected to it.
        let others = PostgresAdapter(target: target).databaseIsMissing(target.maasDatabase, passfile: passfile) ? []
            : try RegionLayout.otherRegions(target: target, database: target.maasDatabase, passfile: passfile, ownID: RegionLayout.maasID(config))
        if !others.isEmpty {
            let names = others.map(\.display).joined(separator: ", ")
            guard force else {
                throw BackupError.unavailable(
                    "another region controller is connected to the MAAS database \(target.maasDatabase): \(names); a \(command) would replace the database under it",
                    hint: "stop MAAS there first, e.g. `systemctl stop maas-regiond maas-temporal maas-temporal-worker maas-apiserver` on each of those hosts, then run \(command) again; --force-other-regions goes on anyway")
            }
            out.otherRegions = RegionLayout.ids(others)
            let backupMM = manifest.maasMajorMinor
            let otherVersion = others.filter { c in c.maasVersion.flatMap(Manifest.majorMinor).map { $0 != backupMM } ?? false }
            if command == "rollback", let first = otherVersion.first {
                out.warnings.append("--force-other-regions: \(first.display) runs another MAAS version than the backup's \(manifest.maasVersion ?? "?"); MAAS does not support regions of different versions on one database: roll it back too")
            }
            out.warnings.append("--force-other-regions: \(names) were connected; their sessions are ended (if they reconnect while the dump loads, the \(command) fails) and they then use the restored database with their own /etc/maas and /var/lib/maas, which this \(command) did not change and which may not match it: restart MAAS on those hosts (systemctl restart maas-regiond ...) and check them")
        }
        out.peers = peerNeeds(recorded: manifest.otherRegions ?? [], connected: others, backupVersion: manifest.maasVersion, command: command)
        if let vault = RegionLayout.vaultURL(config) {
            out.warnings.append(RegionLayout.vaultWarning(vault) + "; this \(command) does not change what Vault holds")
        }
        return out
    }

    /// One line per other region: those recorded at backup time (Manifest.otherRegions) and those
    /// connected now, each with what it needs after this restore or rollback.
    static package func peerNeeds(recorded: [String], connected: [RegionLayout.Connection], backupVersion: String?, command: String) -> [String] {
        let v = backupVersion.flatMap(patchVersion) ?? backupVersion ?? "the backup's version"
        let need = command == "rollback"
            ? "roll it back too (its own pre-upgrade backup), so that it runs MAAS \(v) before its MAAS starts again; MAAS does not support regions of different versions"
            : "it must run MAAS \(v) and restore its own /etc/maas and /var/lib/maas from its backup of the same time, or be re-initialised; restart its MAAS afterwards"
        var lines: [String] = []
        for id in recorded {
            let now = connected.filter { $0.maasId == id }
            lines.append("region \(id) (recorded at backup time" + (now.isEmpty ? "" : "; connected now") + "): " + need)
        }
        for c in connected where !recorded.contains(c.maasId) && !lines.contains(where: { $0.hasPrefix("region \(c.label) ") }) {
            lines.append("region \(c.label) (connected now, not recorded at backup time): " + need)
        }
        return lines
    }

    /// "3.6.1" from "1:3.6.1-16333-g.1234567-0ubuntu1~22.04.1": major.minor.patch without the epoch.
    static package func patchVersion(_ debVersion: String) -> String? {
        var v = Substring(debVersion)
        if let colon = v.firstIndex(of: ":") { v = v[v.index(after: colon)...] }
        let parts = v.split(whereSeparator: { !$0.isNumber }).prefix(3)
        guard parts.count == 3 else { return nil }
        return parts.joined(separator: ".")
    }

    /// The dbupgrade a restore runs when the installed MAAS has the backup's major.minor but another
    /// patch version (the installed code may expect migrations the backup's database lacks), as a
    /// line for the plan; nil when the versions are the same or unknown. Throws (69) when
    /// `maas-region` is missing.
    static package func dbUpgradeNeeded(backup: String?, installed: String?) throws -> String? {
        guard let backup, let installed, let b = patchVersion(backup), let i = patchVersion(installed), b != i,
              Manifest.majorMinor(backup) == Manifest.majorMinor(installed) else { return nil }
        guard let exe = maasRegion() else {
            throw BackupError.unavailable("the backup is of MAAS \(b) but MAAS \(i) is installed, so the restore must run `maas-region dbupgrade`, and maas-region is not found",
                                          hint: "install maas-region-api (or maas-region-controller) \(i), or restore over MAAS \(b)")
        }
        return "the backup is of MAAS \(b) but MAAS \(i) is installed: `\(exe) dbupgrade` runs after the database and the files are restored, before the services start"
    }

    /// maas-region on PATH, else /usr/sbin (where the deb puts it).
    static package func maasRegion() -> String? { Command.find("maas-region", extraDirs: ["/usr/sbin"]) }

    /// Runs `maas-region dbupgrade` as root, as on a deb install; its failure fails the restore.
    static package func dbUpgrade(log: (LogLevel, String) -> Void) async throws {
        guard let exe = maasRegion() else { throw BackupError.failed("maas-region is not found: cannot run dbupgrade") }
        log(.info, "running \(exe) dbupgrade (the installed MAAS differs from the backup's by its patch version)")
        let r = try await Command.run(exe, ["dbupgrade"])
        guard r.succeeded else {
            throw BackupError.failed("\(exe) dbupgrade failed (exit \(r.status)): \(r.lastErrorLine); the database may be partly upgraded",
                                     hint: "see its output with `\(exe) dbupgrade` run by hand")
        }
        log(.info, "\(exe) dbupgrade finished")
    }
}
