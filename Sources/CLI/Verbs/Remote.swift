import ArgumentParser
import Foundation
import MaasBackupCore

struct CopyToRemote: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "copy",
        abstract: "Copy a backup to the restic repository of remote: (off-host, encrypted, deduplicated).",
        discussion: """
            Sends the archive (default: the newest complete backup in the destination) as its uncompressed tar \
            stream (`restic backup --stdin`), tagged maas-snapshot-backup, its reason, maas-<version> and \
            archive=<name>. Local backups missing from the repository whose copy failed before, or that are newer \
            than the newest copy there, are copied too, oldest first. Exit 69 unreachable or not initialised \
            (run remote-init), 78 wrong password or bad remote: section, 75 repository locked.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The archive: a path, or a name in the destination (default: the newest backup).")
    var archive: String?

    @Option(name: .long, help: "Seconds to wait for another copy to finish.")
    var lockTimeout: Double = 600

    func run() async throws {
        try await Output.run(global) {
            Interruption.install()
            let config = try global.loadConfig()
            var log: LogSink?
            if !global.json { log = Output.sink }
            do {
                let r = try await CopyPipeline(config: config, lockTimeout: lockTimeout, log: log).copy(archive: archive)
                if global.json { Output.json(r); return }
                printCopy(r)
            } catch let f as CopyFailure {
                throw f.error
            }
        }
    }
}

func printCopy(_ r: CopyReport, indent: String = "") {
    switch r.status {
    case "nothing": print("\(indent)No backup to copy.")
    case "scheduled": print("\(indent)Copy to \(r.repository): scheduled in the background as \(r.scheduledAs ?? "?"); `status` shows its result")
    case "failed": print("\(indent)Copy to \(r.repository): FAILED: \(r.error ?? "?")")
    default:
        for c in r.copied {
            print("\(indent)Copied \(c.archive) to \(r.repository) as snapshot \(c.snapshotId) (\(Human.bytes(c.uncompressedBytes)) of tar, \(String(format: "%.1f", c.durationMs / 1000)) s)")
        }
        for a in r.alreadyCopied { print("\(indent)Already in \(r.repository): \(a)") }
    }
}

struct RemoteInit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remote-init",
        abstract: "Create the restic repository of remote: (once; an existing one is left as it is).")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await Output.run(global) {
            let config = try global.loadConfig()
            let r = try await RemoteOperations(config: config).initialize()
            if global.json { Output.json(r); return }
            print(r.created ? "Created the repository \(r.repository)." : "The repository \(r.repository) exists already; nothing to do.")
            if r.created { print("Keep a copy of the password file elsewhere: without it the copies cannot be read.") }
        }
    }
}

func printRemoteCopies(_ r: RemoteListReport) {
    if r.copies.isEmpty {
        print("No copies in \(r.repository).")
        return
    }
    Human.table(["TIME (UTC)", "HOST", "REASON", "MAAS", "SNAPSHOT", "ARCHIVE"],
                r.copies.map { [Human.time($0.time), $0.host, $0.reason, $0.maasVersion ?? "-", $0.shortId, $0.archive ?? "-"] })
}
