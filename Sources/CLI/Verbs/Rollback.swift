import ArgumentParser
import Foundation
import MaasBackupCore

struct Rollback: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback",
        abstract: "Go back to a pre-upgrade backup: restore it, then reinstall the MAAS packages it recorded.",
        discussion: """
            Without ARCHIVE, the newest pre-upgrade backup. Does what `restore` does (without the version guard), \
            then reinstalls the recorded MAAS package versions from the .deb files saved beside the archive \
            (dpkg -i, which downgrades; no network needed), then starts and checks the services. \
            Refused inside apt or dpkg, or while they hold the dpkg lock: run it after apt has finished.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The archive (default: the newest pre-upgrade backup).")
    var archive: String?

    @Flag(name: .long, help: "Print the plan and change nothing.")
    var dryRun = false

    @OptionGroup var flags: RestoreFlags

    func run() async throws {
        try await Output.run(global) {
            let opts = try flags.options(what: "rollback", json: global.json, dryRun: dryRun)
            Interruption.install()
            let config = try global.loadConfig()
            let r = try await RollbackPipeline.run(archive: archive, config: config, dryRun: dryRun, options: opts)
            if global.json { Output.json(r); return }
            if let p = r.plan, r.dryRun {
                print("Rollback plan (dry run, nothing changed):")
                print(Confirmation.describe(p.restore, what: "rollback"))
                if p.packages.isEmpty {
                    print("  - packages: the installed MAAS packages already have the backup's versions")
                } else {
                    for c in p.packages { print("  - reinstall \(c.package) \(c.backupVersion) (installed: \(c.installedVersion ?? "none")) from \(c.deb)") }
                    if !p.firstCommand.isEmpty { print("    first (another package Pre-Depends on them): \(p.firstCommand.joined(separator: " "))") }
                    if !p.command.isEmpty { print("    with: \(p.command.joined(separator: " "))") }
                }
                if !p.notInBackup.isEmpty {
                    print("  - remove first (installed now, not in the backup; conffiles kept): \(p.notInBackup.joined(separator: " "))")
                    print("    with: \(p.removeCommand.joined(separator: " "))")
                }
                return
            }
            if let res = r.restore {
                printRestore(res, verb: "Rolled back")
                if let removed = r.plan?.notInBackup, !removed.isEmpty {
                    print("  packages:  removed \(removed.joined(separator: " ")) (not in the backup; conffiles kept)")
                }
                if let pk = res.packages, !(r.plan?.packages.isEmpty ?? true) {
                    print("  packages:  " + (r.plan?.packages ?? []).map { "\($0.package) \(pk[$0.package] ?? "?")" }.joined(separator: ", "))
                }
            }
        }
    }
}
