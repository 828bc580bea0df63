import ArgumentParser

struct ListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "Not implemented yet.")
    @OptionGroup var global: GlobalOptions
    func run() async throws { throw ValidationError("list is not implemented yet") }
}
struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "verify", abstract: "Not implemented yet.")
    @OptionGroup var global: GlobalOptions
    func run() async throws { throw ValidationError("verify is not implemented yet") }
}
struct Restore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "restore", abstract: "Not implemented yet.")
    @OptionGroup var global: GlobalOptions
    func run() async throws { throw ValidationError("restore is not implemented yet") }
}
struct Rollback: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rollback", abstract: "Not implemented yet.")
    @OptionGroup var global: GlobalOptions
    func run() async throws { throw ValidationError("rollback is not implemented yet") }
}
struct Prune: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "prune", abstract: "Not implemented yet.")
    @OptionGroup var global: GlobalOptions
    func run() async throws { throw ValidationError("prune is not implemented yet") }
}
struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Not implemented yet.")
    @OptionGroup var global: GlobalOptions
    func run() async throws { throw ValidationError("status is not implemented yet") }
}
struct Recover: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "recover", abstract: "Not implemented yet.")
    @OptionGroup var global: GlobalOptions
    func run() async throws { throw ValidationError("recover is not implemented yet") }
}
struct AptHook: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "apt-hook", abstract: "Not implemented yet.")
    @OptionGroup var global: GlobalOptions
    func run() async throws { throw ValidationError("apt-hook is not implemented yet") }
}
struct DpkgHook: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dpkg-hook", abstract: "Not implemented yet.")
    @OptionGroup var global: GlobalOptions
    func run() async throws { throw ValidationError("dpkg-hook is not implemented yet") }
}
