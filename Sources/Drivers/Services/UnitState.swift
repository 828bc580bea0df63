import Foundation
import MSBKit

/// One unit's state as systemd reports it (`systemctl show -p Id,LoadState,ActiveState,SubState,ConditionResult,Result`).
public struct UnitState: Sendable, Codable, Equatable {
    public var unit: String
    /// loaded, not-found, masked, error, ...
    public var loadState: String
    /// active, reloading, inactive, failed, activating, deactivating, ...
    public var activeState: String
    public var subState: String
    /// The result of the unit's `Condition*=` checks at its last start: "yes", "no", or "" (never checked).
    public var conditionResult: String
    /// success, exit-code, signal, timeout, start-limit-hit, ...
    public var result: String
    /// The units named by `BindsTo=` and `After=` (without ".service"), for the start order.
    public var bindsTo: [String] = []
    public var after: [String] = []

    public init(unit: String, loadState: String = "loaded", activeState: String, subState: String = "", conditionResult: String = "", result: String = "") {
        self.unit = unit; self.loadState = loadState; self.activeState = activeState
        self.subState = subState; self.conditionResult = conditionResult; self.result = result
    }

    /// False when the unit file is gone (a package that shipped it was removed or downgraded).
    public var exists: Bool { loadState != "not-found" }
    public var isActive: Bool { activeState == "active" || activeState == "reloading" }
    /// Inactive because a `Condition*=` did not hold at its start (systemd skipped it; not a failure).
    public var skippedByCondition: Bool { activeState == "inactive" && conditionResult == "no" }
    public var isFailed: Bool { activeState == "failed" }
    public var display: String {
        "\(unit) is \(activeState)" + (subState.isEmpty ? "" : " (\(subState))") + (result.isEmpty || result == "success" ? "" : ", result \(result)")
    }

    /// The unit among `starting` that this one is left to: it `BindsTo=` that unit but is not
    /// ordered `After=` it, so started beside it, it races that unit's start. MAAS's maas-dhcpd
    /// and maas-dhcpd6 are so (BindsTo=maas-rackd.service, ConditionPathExists=dhcpd.conf), and
    /// maas-rackd's ExecStartPre deletes dhcpd.conf "to prevent maas-dhcpd and maas-dhcpd6 from
    /// starting until maas-rackd has regenerated the configurations and told the services to
    /// start" (its unit file): rackd starts them itself once the region serves.
    public func owner(among starting: Set<String>) -> String? {
        bindsTo.first { starting.contains($0) && !after.contains($0) }
    }

    /// Of `states` (units started together), each one left to its owner among them, with that owner.
    public static func owners(_ states: [UnitState]) -> [String: String] {
        let set = Set(states.map(\.unit))
        var out: [String: String] = [:]
        for s in states { if let o = s.owner(among: set) { out[s.unit] = o } }
        return out
    }

    /// The properties read, in `systemctl show -p` form.
    public static let properties = "Id,LoadState,ActiveState,SubState,ConditionResult,Result,BindsTo,After"

    /// A `systemctl show` unit list ("a.service b.target") as unit names, ".service" dropped.
    static func unitList(_ v: String?) -> [String] {
        (v ?? "").split(separator: " ").map { $0.hasSuffix(".service") ? String($0.dropLast(8)) : String($0) }
    }

    /// Parses `systemctl show` output for `units` (one block per unit, in order, blank-line separated).
    public static func parse(_ out: String, units: [String]) throws -> [UnitState] {
        var blocks: [[String: String]] = []
        var cur: [String: String] = [:]
        for line in out.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.trimmingCharacters(in: .whitespaces).isEmpty {
                if !cur.isEmpty { blocks.append(cur); cur = [:] }
                continue
            }
            guard let eq = line.firstIndex(of: "=") else { continue }
            cur[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        if !cur.isEmpty { blocks.append(cur) }
        guard blocks.count == units.count else {
            throw BackupError.unavailable("systemctl show gave \(blocks.count) units for \(units.count) asked")
        }
        return zip(units, blocks).map { u, b in
            var s = UnitState(unit: u, loadState: b["LoadState"] ?? "", activeState: b["ActiveState"] ?? "",
                              subState: b["SubState"] ?? "", conditionResult: b["ConditionResult"] ?? "", result: b["Result"] ?? "")
            s.bindsTo = unitList(b["BindsTo"]); s.after = unitList(b["After"])
            return s
        }
    }
}

/// What starting the stopped MAAS units came to, unit by unit (README "Restore").
public struct UnitStartOutcome: Sendable, Codable, Equatable {
    /// Active at the end.
    public var active: [String] = []
    /// Left inactive by systemd because a `Condition*=` did not hold (e.g. maas-dhcpd before
    /// maas-rackd wrote dhcpd.conf again): accepted, not a failure.
    public var skippedByCondition: [String] = []
    /// No longer exist (their package was removed, e.g. the 3.5-only units after a rollback to 3.4): not started.
    public var gone: [String] = []
    /// Not started here, left to the unit they are bound to (`UnitState.owner(among:)`): their
    /// state when the wait ended, whatever it was (the owner starts them when it is ready).
    public var leftToOwner: [LeftUnit] = []
    /// Failed, or not active by the deadline: each unit's last state.
    public var failed: [UnitState] = []
    /// `systemctl start`'s own error, if any (the per-unit states decide).
    public var startError: String?

    public init() {}
    public var ok: Bool { failed.isEmpty }
    /// The units that still exist (to be stopped again on an undo).
    public var existing: [String] { active + skippedByCondition + failed.map(\.unit) + leftToOwner.map(\.unit) }

    /// One line per kind that is not plainly "active".
    public var notes: [String] {
        var n: [String] = []
        if !skippedByCondition.isEmpty {
            n.append("\(skippedByCondition.joined(separator: " ")) stayed inactive because a Condition* of the unit does not hold yet (systemd skipped it; MAAS starts it itself once it has written its configuration)")
        }
        for l in leftToOwner {
            n.append("\(l.unit) was left to \(l.owner), which starts it once it has written its configuration (it is bound to \(l.owner) but not ordered after it, so started beside it, it would race \(l.owner)'s start); \(l.unit) is \(l.activeState) now")
        }
        if !gone.isEmpty { n.append("\(gone.joined(separator: " ")) no longer exist (their package is not installed), so they were not started") }
        return n
    }
}

/// A unit left to the unit it is bound to, and its state when the wait ended.
public struct LeftUnit: Sendable, Codable, Equatable {
    public var unit: String
    public var owner: String
    public var activeState: String
    public init(unit: String, owner: String, activeState: String) { self.unit = unit; self.owner = owner; self.activeState = activeState }
}

extension ServiceManager {
    /// Of `units` (about to be started together), those to leave to a unit they are bound to
    /// (`UnitState.owner(among:)`), each with that unit.
    public func leftToOwners(_ units: [String]) async throws -> [String: String] {
        guard !units.isEmpty else { return [:] }
        return UnitState.owners(try await states(units).filter(\.exists))
    }

    /// Starts those of `units` that still exist (in the order given) and are not left to a unit
    /// they are bound to (`UnitState.owner(among:)`: their state at the end is only reported), then waits, unit by unit,
    /// until each is active (seen so on two polls in a row, so that a daemon that dies at once is
    /// not taken for running), failed, or skipped by its condition, or `timeout` seconds of
    /// wall-clock time have passed.
    public func startAndWait(_ units: [String], timeout: Double, poll: Double = 0.5) async throws -> UnitStartOutcome {
        var out = UnitStartOutcome()
        guard !units.isEmpty else { return out }
        let before = try await states(units)
        out.gone = before.filter { !$0.exists }.map(\.unit)
        let existing = before.filter(\.exists)
        let owners = UnitState.owners(existing)
        let toStart = existing.map(\.unit).filter { owners[$0] == nil }
        guard !toStart.isEmpty else { return out }
        // Wall-clock from the start request: a `systemctl start` that blocks counts against it.
        let deadline = Date().addingTimeInterval(timeout)
        do { try await start(toStart) } catch { out.startError = "\(error)" }
        var pending = toStart
        var seenActive: Set<String> = []
        while true {
            let now = try await states(pending)
            var still: [UnitState] = []
            for s in now {
                if s.isActive && seenActive.contains(s.unit) { out.active.append(s.unit) }
                else if s.isActive { seenActive.insert(s.unit); still.append(s) }
                else if s.skippedByCondition { out.skippedByCondition.append(s.unit) }
                else if s.isFailed || !s.exists { out.failed.append(s) }
                else { still.append(s) }
            }
            pending = still.map(\.unit)
            if pending.isEmpty { break }
            if Date() >= deadline {
                // Active on the last poll only: active (it was not seen to fail).
                out.active += still.filter(\.isActive).map(\.unit)
                out.failed += still.filter { !$0.isActive }
                break
            }
            try await Task.sleep(nanoseconds: UInt64(poll * 1e9))
        }
        if !owners.isEmpty {
            let left = units.filter { owners[$0] != nil }
            let now = (try? await states(left)) ?? []
            out.leftToOwner = left.map { u in LeftUnit(unit: u, owner: owners[u]!, activeState: now.first { $0.unit == u }?.activeState ?? "unknown") }
        }
        let order = Dictionary(units.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        out.active.sort { order[$0]! < order[$1]! }
        out.skippedByCondition.sort { order[$0]! < order[$1]! }
        out.failed.sort { order[$0.unit]! < order[$1.unit]! }
        return out
    }

    /// Those of `units` whose unit file still exists.
    public func existing(_ units: [String]) async throws -> [String] {
        guard !units.isEmpty else { return [] }
        return try await states(units).filter(\.exists).map(\.unit)
    }
}
