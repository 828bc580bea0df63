import ArgumentParser
import Foundation
import MaasBackupCore
#if canImport(Glibc)
import Glibc
#endif

@main
struct MaasSnapshotBackup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "maas-snapshot-backup",
        abstract: "Back up a MAAS region with the services stopped only for the snapshot instant.",
        discussion: "Exit codes: 0 ok, 1 failed (services started again, leftovers removed), 3 partial, 64 usage, 65 bad archive or hook input, 69 unavailable, 73 cannot create output, 75 locked, 77 not root, 78 config.",
        version: ToolInfo.version,
        subcommands: [Backup.self, ListCommand.self, Verify.self, Restore.self, Rollback.self, Prune.self,
                      Status.self, Recover.self, AptHook.self, DpkgHook.self, GuardCommand.self],
        defaultSubcommand: Backup.self
    )
}

struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "Configuration file (default /etc/maas-snapshot-backup/config.yaml).")
    var config: String?

    @Flag(name: .long, help: "Print one JSON object on stdout instead of a summary.")
    var json = false

    func loadConfig() throws -> Config { try Config.load(path: config) }
}

/// Prints results and errors; maps errors to the documented exit codes.
enum Output {
    static let isTerminal = isatty(STDERR_FILENO) == 1

    static func json<T: Encodable>(_ value: T) {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        if let d = try? e.encode(value) { print(String(decoding: d, as: UTF8.self)) }
    }

    static func err(_ s: String) {
        FileHandle.standardError.write(Data((s + "\n").utf8))
    }

    struct ErrorJSON: Encodable { var status = "error"; var error: String; var exitCode: Int32 }

    /// Runs `body`; prints an error as one line (or JSON) and exits with its code.
    static func run(json: Bool, _ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let e as BackupError {
            if json { Output.json(ErrorJSON(error: e.description, exitCode: e.code.rawValue)) }
            err("maas-snapshot-backup: error: \(e.description)")
            throw ArgumentParser.ExitCode(e.code.rawValue)
        } catch let e as ArgumentParser.ExitCode {
            throw e
        } catch {
            if json { Output.json(ErrorJSON(error: "\(error)", exitCode: 1)) }
            err("maas-snapshot-backup: error: \(error)")
            throw ArgumentParser.ExitCode(1)
        }
    }

    /// A one-line progress bar on the terminal.
    final class Progress: @unchecked Sendable {
        private let lock = NSLock()
        private var last = 0.0
        func update(_ done: Int64, _ total: Int64) {
            lock.lock(); defer { lock.unlock() }
            let now = Date().timeIntervalSince1970
            guard now - last > 0.2 else { return }
            last = now
            let pct = total > 0 ? min(100, Int(Double(done) * 100 / Double(total))) : 0
            let width = 30
            let fill = pct * width / 100
            let bar = String(repeating: "#", count: fill) + String(repeating: ".", count: width - fill)
            FileHandle.standardError.write(Data(String(format: "\r  archiving [%@] %3d%% %8.1f MiB", bar, pct, Double(done) / 1048576).utf8))
        }
        func done() { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}

struct Backup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Take a backup (the default command).")

    @OptionGroup var global: GlobalOptions

    @Flag(name: .long, help: "Print the plan (what would be stopped, snapshotted, copied and archived) and change nothing.")
    var dryRun = false

    @Option(name: .long, help: "Why this backup is taken; recorded in the manifest.")
    var reason = "manual"

    @Option(name: .long, help: "How to freeze the data: auto, btrfs, lvm or none (none keeps MAAS stopped for the whole run).")
    var snapshot: Config.SnapshotChoice?

    @Option(name: .long, help: "Seconds to wait for another run's lock.")
    var lockTimeout: Double = 30

    func run() async throws {
        try await Output.run(json: global.json) {
            let config = try global.loadConfig()
            let result = try await runBackup(config: config, reason: reason, snapshot: snapshot, dryRun: dryRun,
                                             lockTimeout: lockTimeout, json: global.json, debs: [:])
            printResult(result, json: global.json)
        }
    }
}

extension Config.SnapshotChoice: ExpressibleByArgument {}

func runBackup(config: Config, reason: String, snapshot: Config.SnapshotChoice?, dryRun: Bool, lockTimeout: Double,
               json: Bool, debs: [String: String]) async throws -> BackupResult {
    Interruption.install()
    var opts = BackupOptions()
    opts.reason = reason
    opts.snapshot = snapshot
    opts.dryRun = dryRun
    opts.lockTimeout = lockTimeout
    opts.debsToSave = debs
    opts.guardExecutable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
    if !json { opts.log = { Output.err($0) } }
    let bar = Output.Progress()
    if Output.isTerminal && !json { opts.progress = { bar.update($0, $1) } }
    defer { if Output.isTerminal && !json { bar.done() } }
    return try await BackupPipeline(config: config, options: opts).run()
}

func printResult(_ r: BackupResult, json: Bool) {
    if json { Output.json(r); return }
    if r.dryRun, let p = r.plan {
        print("Plan (dry run, nothing changed):")
        print("  database:  \(p.databaseTarget), PostgreSQL \(p.database.serverVersion), dump \(p.database.databases.joined(separator: ", "))")
        for i in p.items {
            print("  \(i.path): \(i.method.rawValue)\(i.volume.map { " (\($0.detail))" } ?? ""), \(i.sizeBytes) bytes")
        }
        print("  stop:      \(p.servicesToStop.isEmpty ? "(nothing active)" : p.servicesToStop.joined(separator: " "))\(p.stopForWholeRun ? " for the whole run" : " for the window only")")
        if !p.servicesInactive.isEmpty { print("  not active, left alone: \(p.servicesInactive.joined(separator: " "))") }
        print("  archive:   into \(p.destination), about \(p.estimatedBytes) bytes at most, \(p.freeBytes) bytes free")
        for w in r.warnings { print("  warning:   \(w)") }
        return
    }
    print("Backup written: \(r.archive ?? "-")")
    print("  size:      \(r.sizeBytes) bytes")
    print("  method:    \(r.snapshotMethod)")
    print("  stopped:   \(r.servicesStopped.isEmpty ? "nothing" : r.servicesStopped.joined(separator: " "))")
    print(String(format: "  downtime:  %.1f ms (%@)", r.downtimeMs, r.window.map { "\($0.step) \(String(format: "%.1f", $0.ms))" }.joined(separator: ", ")))
    print(String(format: "  duration:  %.1f s", r.durationMs / 1000))
    for w in r.warnings { print("  warning:   \(w)") }
}

struct GuardCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "guard", abstract: "Internal: the dead-man guard of a backup window.",
                                                    shouldDisplay: false)
    @Option var timeout: Int = 120
    @Argument var services: [String] = []
    func run() async throws {
        let rc = await DeadManGuard.runGuard(services: services, timeoutSeconds: timeout)
        throw ArgumentParser.ExitCode(rc)
    }
}
