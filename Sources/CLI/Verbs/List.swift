import ArgumentParser
import Foundation
import MaasBackupCore

struct ListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List the backups in the destination, newest first.",
        discussion: "Read from the sidecar manifests (<archive>.manifest.json). VERIFIED is yes when `verify` (or `restore`) passed on the archive as it is now; deep when `verify --deep` did.")

    @OptionGroup var global: GlobalOptions

    @Flag(name: .long, help: "List the copies in the restic repository of remote: instead.")
    var remote = false

    struct ListJSON: Encodable {
        var destination: String
        var backups: [BackupEntry]
    }

    func run() async throws {
        try await Output.run(global) {
            let config = try global.loadConfig()
            if remote {
                let r = try await RemoteOperations(config: config).list()
                if global.json { Output.json(r) } else { printRemoteCopies(r) }
                return
            }
            let entries = Catalog.entries(destination: config.destination)
            if global.json {
                Output.json(ListJSON(destination: config.destination, backups: entries))
                return
            }
            if entries.isEmpty {
                print("No backups in \(config.destination).")
                return
            }
            let rows = entries.map { e -> [String] in
                [Human.time(e.createdAt), e.reason, Human.bytes(e.sizeBytes), e.maasVersion ?? "-",
                 e.verified ? (e.deepVerified ? "deep" : "yes") : "no", e.name]
            }
            Human.table(["CREATED (UTC)", "REASON", "SIZE", "MAAS", "VERIFIED", "ARCHIVE"], rows)
        }
    }
}

/// Formatting for the human summaries (Human.bytes is the kit's).
extension Human {
    /// "2026-11-26T01:21:53Z" -> "2026-11-26 01:21:53".
    static func time(_ iso: String) -> String {
        iso.replacingOccurrences(of: "T", with: " ").replacingOccurrences(of: "Z", with: "")
    }

    static func table(_ header: [String], _ rows: [[String]]) {
        var widths = header.map(\.count)
        for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
        func line(_ r: [String]) -> String {
            r.enumerated().map { i, c in i == r.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                .joined(separator: "  ")
        }
        print(line(header))
        for r in rows { print(line(r)) }
    }

    static func head(_ h: SchemaHead) -> String {
        var parts: [String] = []
        if let d = h.django { parts.append(d) }
        if let a = h.alembic { parts.append("alembic " + a) }
        return parts.isEmpty ? "(none)" : parts.joined(separator: ", ")
    }
}
