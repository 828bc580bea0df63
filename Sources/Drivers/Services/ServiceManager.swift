import Foundation
import MSBKit
#if canImport(Glibc)
import Glibc
#endif

/// Starts, stops, freezes and thaws the MAAS services.
public protocol ServiceManager: Sendable {
    /// Of `units`, those that are active now, in the order given.
    func activeUnits(_ units: [String]) async throws -> [String]
    /// Each unit's state (systemd's own view: loaded or gone, active, failed, skipped by a condition), in the order given.
    func states(_ units: [String]) async throws -> [UnitState]
    /// Stops `units` (one job transaction, so systemd orders them by their dependencies).
    func stop(_ units: [String]) async throws
    /// Starts `units`.
    func start(_ units: [String]) async throws
    /// Freezes `units` (systemd's cgroup freezer: every process pauses, keeping its PID, sockets
    /// and database connections).
    func freeze(_ units: [String]) async throws
    /// Thaws `units`; thawing a unit that is not frozen is harmless.
    func thaw(_ units: [String]) async throws
    /// Why `units` cannot be frozen here, or nil when every one of them can.
    func cannotFreeze(_ units: [String]) async -> String?
    /// Of `units`, those frozen now (FreezerState not `running`), in the order given.
    func frozenUnits(_ units: [String]) async -> [String]

    /// Makes systemd read the unit files again (after dpkg added or removed some).
    func daemonReload() async throws
}

extension ServiceManager {
    public func freeze(_ units: [String]) async throws {
        throw BackupError.unavailable("this service manager cannot freeze units")
    }
    public func thaw(_ units: [String]) async throws {}
    public func cannotFreeze(_ units: [String]) async -> String? { "this service manager cannot freeze units" }
    public func frozenUnits(_ units: [String]) async -> [String] { [] }

    public func daemonReload() async throws {}
}

/// `systemctl`, found on PATH (a test can put its own first).
public struct Systemctl: ServiceManager {
    public let executable: String
    /// cgroup v2's root file (the freezer needs the unified hierarchy). MSB_TEST_CGROUP_CONTROLLERS
    /// (a test hook, README "Developer notes") names another file.
    public var cgroupControllers = FaultPoint.environment["MSB_TEST_CGROUP_CONTROLLERS"] ?? "/sys/fs/cgroup/cgroup.controllers"
    /// The oldest systemd with `systemctl freeze`.
    public static let freezeSince = 246

    public init() throws {
        guard let exe = Command.find("systemctl") else {
            throw BackupError.unavailable("systemctl was not found on PATH", hint: "this tool drives the MAAS services through systemd")
        }
        executable = exe
    }

    /// A given systemctl (tests).
    public init(executable: String) {
        self.executable = executable
    }

    public func states(_ units: [String]) async throws -> [UnitState] {
        guard !units.isEmpty else { return [] }
        let r = try await Command.run(executable, ["show", "-p", UnitState.properties, "--"] + units)
        guard r.succeeded else { throw BackupError.unavailable("systemctl show \(units.joined(separator: " ")) failed: \(r.lastErrorLine)") }
        return try UnitState.parse(r.stdout, units: units)
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
        try await verb("stop", units)
    }

    public func start(_ units: [String]) async throws {
        try await verb("start", units)
    }

    public func freeze(_ units: [String]) async throws {
        try await verb("freeze", units)
    }

    public func thaw(_ units: [String]) async throws {
        try await verb("thaw", units)
    }

    public func frozenUnits(_ units: [String]) async -> [String] {
        guard !units.isEmpty, let r = try? await Command.run(executable, ["show", "-p", "FreezerState", "--value", "--"] + units),
              r.succeeded else { return [] }
        let states = r.stdout.split(separator: "\n", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        return zip(units, states).filter { !$0.1.isEmpty && $0.1 != "running" }.map(\.0)
    }

    public func daemonReload() async throws {
        let r = try await Command.run(executable, ["daemon-reload"])
        guard r.succeeded else { throw BackupError.failed("systemctl daemon-reload failed: \(r.lastErrorLine)") }
    }

    private func verb(_ v: String, _ units: [String]) async throws {
        guard !units.isEmpty else { return }
        let r = try await Command.run(executable, [v, "--"] + units)
        guard r.succeeded else { throw BackupError.failed("systemctl \(v) \(units.joined(separator: " ")) failed: \(r.lastErrorLine)") }
    }

    /// cgroup v2, systemd ≥ 246, a FreezerState on each unit, and the system bus (`systemctl
    /// freeze` talks to systemd over D-Bus: "Failed to connect to bus" without it).
    public func cannotFreeze(_ units: [String]) async -> String? {
        guard FileManager.default.fileExists(atPath: cgroupControllers) else {
            return "cgroup v2 is not mounted (no \(cgroupControllers)): systemd's freezer needs the unified hierarchy"
        }
        guard let r = try? await Command.run(executable, ["--version"]), r.succeeded else {
            return "systemctl --version failed"
        }
        guard let v = Self.systemdVersion(r.stdout) else {
            return "cannot read systemd's version from systemctl --version"
        }
        guard v >= Self.freezeSince else { return "systemd \(v) is older than \(Self.freezeSince), which brought systemctl freeze" }
        for u in units {
            let s = try? await Command.run(executable, ["show", "-p", "FreezerState", "--value", "--", u])
            let state = s?.stdout.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            guard s?.succeeded == true, !state.isEmpty else { return "\(u) has no FreezerState property" }
            guard state == "running" else { return "\(u) is \(state), not running (another freeze in progress?)" }
        }
        if let why = Self.systemBusUnreachable() { return why }
        return nil
    }

    /// "systemd 252 (252.36-1~deb12u1)" -> 252.
    static package func systemdVersion(_ out: String) -> Int? {
        guard let line = out.split(separator: "\n").first else { return nil }
        let words = line.split(separator: " ")
        guard words.count >= 2, words[0] == "systemd" else { return nil }
        return Int(words[1].prefix { $0.isNumber })
    }

    /// Connects to the D-Bus system bus (DBUS_SYSTEM_BUS_ADDRESS's unix:path=, else
    /// /run/dbus/system_bus_socket, as sd-bus does); nil when it answers.
    static package func systemBusUnreachable() -> String? {
        var path = "/run/dbus/system_bus_socket"
        if let a = ProcessInfo.processInfo.environment["DBUS_SYSTEM_BUS_ADDRESS"], !a.isEmpty {
            guard let r = a.range(of: "unix:path=") else { return "DBUS_SYSTEM_BUS_ADDRESS (\(a)) is not a unix:path= address" }
            path = String(a[r.upperBound...].prefix { $0 != "," && $0 != ";" })
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return "cannot make a socket: \(Errno.last.description)" }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { return "the system bus path \(path) is too long" }
        withUnsafeMutableBytes(of: &addr.sun_path) { buf in
            for (i, b) in bytes.enumerated() { buf[i] = b }
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            return "the D-Bus system bus (\(path)) is not reachable: \(Errno.last.description); systemctl freeze needs it (install dbus)"
        }
        return nil
    }
}
