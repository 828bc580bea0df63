import ArgumentParser
import Foundation
import MaasBackupCore

struct Prune: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Remove old backups by retention.keep, keep_pre_upgrade and max_age_days.",
        discussion: "Never removes the newest backup, the newest verified backup or the newest pre-upgrade backup, nor an archive without a readable sidecar manifest. Removes the archive, its sidecar, its .verified stamp and its <name>.debs/ folder. Also removes a MAAS 3.5+ image-storage folder that a restore or rollback left in a folder it moved aside (<path>.pre-restore-<time>) once that is older than max_age_days. With a remote: section, then applies remote.retention (each key defaults to retention's) to this host's copies in the repository (restic forget, then prune); the newest copy and the newest pre-upgrade copy always stay. Exit 3 when the local side was pruned and the remote side failed.")

    /// The local report's fields, plus `remote`.
    struct Both: Encodable {
        var local: PruneReport
        var remote: RemotePruneReport?
        var remoteError: String?
        enum Key: String, CodingKey { case remote, remoteError }
        func encode(to encoder: any Encoder) throws {
            try local.encode(to: encoder)
            var c = encoder.container(keyedBy: Key.self)
            try c.encodeIfPresent(remote, forKey: .remote)
            try c.encodeIfPresent(remoteError, forKey: .remoteError)
        }
    }

    @OptionGroup var global: GlobalOptions

    @Flag(name: .long, help: "Say what would be removed and remove nothing.")
    var dryRun = false

    func run() async throws {
        try await Output.run(global) {
            let config = try global.loadConfig()
            let outcome = try await PruneRun.run(config: config, dryRun: dryRun)
            let (r, remote, remoteError) = (outcome.local, outcome.remote, outcome.remoteError)
            if global.json {
                Output.json(Both(local: r, remote: remote, remoteError: remoteError?.description))
            } else {
                let verb = dryRun ? "would be removed" : "removed"
                print("Retention: keep \(r.keep), keep_pre_upgrade \(r.keepPreUpgrade), max_age_days \(r.maxAgeDays)\(dryRun ? " (dry run, nothing removed)" : "")")
                for i in r.removed { print("  \(dryRun ? "would remove" : "removed"): \((i.archive as NSString).lastPathComponent) (\(i.reason), \(Human.bytes(i.sizeBytes))): \(i.why)") }
                for i in r.kept { print("  kept:    \((i.archive as NSString).lastPathComponent) (\(i.reason)): \(i.why)") }
                print("\(r.removed.count) backup(s) \(verb), \(Human.bytes(r.freedBytes)) \(dryRun ? "would be " : "")freed")
                for st in r.removedImageStores ?? [] {
                    print("  \(dryRun ? "would remove" : "removed"): \(st.path) (\(Human.bytes(st.sizeBytes)), a MAAS image store a restore moved aside at \(st.movedAsideAt), older than max_age_days)")
                }
                for e in r.errors { Output.log(.error, "maas-snapshot-backup: error: \(e)") }
                if let x = remote {
                    print("Remote \(x.repository) (copies of \(x.host)): keep \(x.keep), keep_pre_upgrade \(x.keepPreUpgrade), max_age_days \(x.maxAgeDays)")
                    for c in x.removed { print("  \(dryRun ? "would remove" : "removed"): \(c.archive ?? c.shortId) (\(c.reason), snapshot \(c.shortId))") }
                    for c in x.kept { print("  kept:    \(c.archive ?? c.shortId) (\(c.reason), snapshot \(c.shortId))") }
                    print("\(x.removed.count) cop\(x.removed.count == 1 ? "y" : "ies") \(verb) from the repository\(x.removed.isEmpty || dryRun ? "" : " (restic prune freed their data)")")
                }
            }
            if let remoteError { Output.log(.error, "maas-snapshot-backup: error: remote prune: \(remoteError.description)") }
            if outcome.exitCode != .success { throw ArgumentParser.ExitCode(outcome.exitCode.rawValue) }
        }
    }
}
