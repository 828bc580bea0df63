import ArgumentParser
import Foundation
import MaasBackupCore

struct Prune: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Remove old backups by retention.keep, keep_pre_upgrade and max_age_days.",
        discussion: "Never removes the newest backup, the newest verified backup or the newest pre-upgrade backup, nor an archive without a readable sidecar manifest. Removes the archive, its sidecar, its .verified stamp and its <name>.debs/ folder.")

    @OptionGroup var global: GlobalOptions

    @Flag(name: .long, help: "Say what would be removed and remove nothing.")
    var dryRun = false

    func run() async throws {
        try await Output.run(json: global.json) {
            let config = try global.loadConfig()
            let r = try MaasBackupCore.Prune.run(config: config, dryRun: dryRun)
            if global.json {
                Output.json(r)
            } else {
                let verb = dryRun ? "would be removed" : "removed"
                print("Retention: keep \(r.keep), keep_pre_upgrade \(r.keepPreUpgrade), max_age_days \(r.maxAgeDays)\(dryRun ? " (dry run, nothing removed)" : "")")
                for i in r.removed { print("  \(dryRun ? "would remove" : "removed"): \((i.archive as NSString).lastPathComponent) (\(i.reason), \(Human.bytes(i.sizeBytes))): \(i.why)") }
                for i in r.kept { print("  kept:    \((i.archive as NSString).lastPathComponent) (\(i.reason)): \(i.why)") }
                print("\(r.removed.count) backup(s) \(verb), \(Human.bytes(r.freedBytes)) \(dryRun ? "would be " : "")freed")
                for e in r.errors { Output.err("maas-snapshot-backup: error: \(e)") }
            }
            if !r.errors.isEmpty { throw ArgumentParser.ExitCode(ExitCode.failed.rawValue) }
        }
    }
}
