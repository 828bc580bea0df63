import ArgumentParser
import Foundation
import MaasBackupCore

struct Recover: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recover",
        abstract: "Undo what interrupted runs left behind (services, snapshots, temporary files, swapped folders).",
        discussion: "Works from the journals in <state_dir>; touches nothing the tool did not make. Exit 1 when something could not be undone.")

    @OptionGroup var global: GlobalOptions

    @Option(name: .long, help: "Seconds to wait for a running backup's lock.")
    var lockTimeout: Double = 30

    func run() async throws {
        try await Output.run(global) {
            let config = try global.loadConfig()
            let r = try await Recovery.run(config: config, lockTimeout: lockTimeout)
            if global.json {
                Output.json(r)
            } else if r.items.isEmpty {
                print("Nothing to recover.")
            } else {
                for i in r.items {
                    print("\(i.command) run \(i.runID): \(i.done ? "recovered" : "NOT fully recovered")")
                    for a in i.actions { print("  \(a)") }
                    for e in i.errors { print("  error: \(e)") }
                }
            }
            if r.status == "incomplete" { throw ArgumentParser.ExitCode(ExitCode.failed.rawValue) }
        }
    }
}
