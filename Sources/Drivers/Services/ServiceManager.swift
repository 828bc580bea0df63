import MSBKit
/// Starts and stops the MAAS services.
public protocol ServiceManager: Sendable {
    /// Of `units`, those that are active now, in the order given.
    func activeUnits(_ units: [String]) async throws -> [String]
    /// Stops `units` (one job transaction, so systemd orders them by their dependencies).
    func stop(_ units: [String]) async throws
    /// Starts `units`.
    func start(_ units: [String]) async throws
}

/// `systemctl`, found on PATH (a test can put its own first).
public struct Systemctl: ServiceManager {
    public let executable: String

    public init() throws {
        guard let exe = Command.find("systemctl") else {
            throw BackupError.unavailable("systemctl was not found on PATH", hint: "this tool drives the MAAS services through systemd")
        }
        executable = exe
    }

    public func activeUnits(_ units: [String]) async throws -> [String] {
        guard !units.isEmpty else { return [] }
        // `is-active` prints one state per unit and exits non-zero when any is inactive.
        let r = try await Command.run(executable, ["is-active", "--"] + units)
        let states = r.stdout.split(separator: "\n", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard states.count >= units.count else {
            throw BackupError.unavailable("systemctl is-active gave \(states.count) states for \(units.count) units: \(r.lastErrorLine)")
        }
        return zip(units, states).filter { $0.1 == "active" || $0.1 == "activating" || $0.1 == "reloading" }.map(\.0)
    }

    public func stop(_ units: [String]) async throws {
        guard !units.isEmpty else { return }
        let r = try await Command.run(executable, ["stop", "--"] + units)
        guard r.succeeded else { throw BackupError.failed("systemctl stop \(units.joined(separator: " ")) failed: \(r.lastErrorLine)") }
    }

    public func start(_ units: [String]) async throws {
        guard !units.isEmpty else { return }
        let r = try await Command.run(executable, ["start", "--"] + units)
        guard r.succeeded else { throw BackupError.failed("systemctl start \(units.joined(separator: " ")) failed: \(r.lastErrorLine)") }
    }
}
