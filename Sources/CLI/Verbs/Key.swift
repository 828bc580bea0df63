import ArgumentParser
import Foundation
import MaasBackupCore

struct KeyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key",
        abstract: "This host's archive signing key.",
        subcommands: [KeyShowCommand.self])
}

struct KeyShowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Print this host's public signing key (made if there is none yet), the line another host's trusted_keys takes.")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await Output.run(global) {
            let r = try KeyShow.run(config: try global.loadConfig())
            if global.json { Output.json(r); return }
            print(r.publicKey)
            Output.log(.notice, "key \(r.keyId), private half in \(r.path)\(r.created ? " (made now)" : ""); keep a copy of that file beside the restic password")
        }
    }
}
