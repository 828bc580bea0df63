import MSBKit
import MSBPackages

/// What a package transaction does to one package.
public enum PackageChangeKind: String, Sendable, Codable, CaseIterable {
    /// Not installed before (or only its configuration files were left).
    case install
    case upgrade
    case downgrade
    /// Same version again.
    case reinstall
    /// Only configured (already unpacked at that version).
    case configure
    case remove
    /// Removed together with its configuration files.
    case purge

    /// Whether this change can lose data worth a backup.
    public var needsBackup: Bool {
        switch self {
        case .upgrade, .downgrade, .remove, .purge: return true
        case .install, .reinstall, .configure: return false
        }
    }

    /// Severity used to merge several lines about one package (apt sends an install line and a
    /// configure line for each upgraded package).
    package var rank: Int {
        switch self {
        case .configure: return 0
        case .reinstall: return 1
        case .install: return 2
        case .upgrade, .downgrade: return 3
        case .remove: return 4
        case .purge: return 5
        }
    }
}

/// One package touched by the transaction.
public struct PackageChange: Sendable, Hashable, Codable {
    public var name: String
    /// The architecture (`amd64`, `all`), when known.
    public var architecture: String?
    /// The installed version before the transaction; nil when not installed.
    public var oldVersion: String?
    /// The version the transaction installs; nil for a removal.
    public var newVersion: String?
    public var kind: PackageChangeKind
    /// The .deb file that installs `newVersion`, when known (apt's archive cache, dpkg's argument).
    public var archivePath: String?

    public init(name: String, architecture: String? = nil, oldVersion: String?, newVersion: String?, kind: PackageChangeKind,
                archivePath: String? = nil) {
        self.name = name
        self.architecture = architecture
        self.oldVersion = oldVersion
        self.newVersion = newVersion
        self.kind = kind
        self.archivePath = archivePath
    }

    /// Classifies a change from the two versions alone (nil = not installed / removed).
    public static func classify(name: String, architecture: String? = nil, old: String?, new: String?,
                                archivePath: String? = nil) -> PackageChange {
        let kind: PackageChangeKind
        switch (old, new) {
        case (nil, _): kind = .install
        case (_, nil): kind = .remove
        case let (o?, n?):
            let c = DebianVersion.compare(DebianVersion(n), DebianVersion(o))
            kind = c > 0 ? .upgrade : (c < 0 ? .downgrade : .reinstall)
        }
        return PackageChange(name: name, architecture: architecture, oldVersion: old, newVersion: new, kind: kind,
                             archivePath: archivePath)
    }

    /// `maas-region-controller 1:3.4.0-1 -> 1:3.5.0-1`, `maas-rack-controller 1:3.4.0-1 -> removed`.
    public var summary: String {
        let old = oldVersion ?? "none"
        switch kind {
        case .remove: return "\(name) \(old) -> removed"
        case .purge: return "\(name) \(old) -> purged"
        default: return "\(name) \(old) -> \(newVersion ?? "none")"
        }
    }
}

/// The hooks' verdict: does this package transaction need a backup first, and why.
public struct HookDecision: Sendable, Equatable, Codable {
    /// Every backup a hook takes has a reason starting with this (retention's `keep_pre_upgrade`).
    public static let reasonPrefix = "pre-upgrade"

    public var backupNeeded: Bool
    /// `pre-upgrade maas-region-controller 1:3.4.0-1 -> 1:3.5.0-1, maas-common ...`; nil when no
    /// backup is needed.
    public var reason: String?
    /// Every MAAS package the transaction touches, in the order first seen, one entry per package.
    public var packages: [PackageChange]
    /// One line for the log, whichever way the decision went.
    public var explanation: String
    /// Things the hook could not read but went on without (an unreadable .deb).
    public var warnings: [String]

    public init(backupNeeded: Bool, reason: String?, packages: [PackageChange], explanation: String, warnings: [String] = []) {
        self.backupNeeded = backupNeeded
        self.reason = reason
        self.packages = packages
        self.explanation = explanation
        self.warnings = warnings
    }

    /// No backup, with the reason why not (not a package transaction, dry run, ...).
    public static func skip(_ explanation: String, warnings: [String] = []) -> HookDecision {
        HookDecision(backupNeeded: false, reason: nil, packages: [], explanation: explanation, warnings: warnings)
    }

    /// Decides from all changes of a transaction (MAAS or not); several lines about one package
    /// (same name and architecture) are merged, keeping the most drastic one.
    public static func decide(_ changes: [PackageChange], warnings: [String] = []) -> HookDecision {
        var order: [String] = []
        var merged: [String: PackageChange] = [:]
        for change in changes where MaasPackages.isMaasPackage(change.name) {
            let key = change.name + ":" + (change.architecture ?? "")
            if let existing = merged[key] {
                var best = change.kind.rank > existing.kind.rank ? change : existing
                // Keep the best-known versions from either line.
                best.oldVersion = best.oldVersion ?? existing.oldVersion ?? change.oldVersion
                if best.kind != .remove && best.kind != .purge {
                    best.newVersion = best.newVersion ?? existing.newVersion ?? change.newVersion
                    best.archivePath = best.archivePath ?? existing.archivePath ?? change.archivePath
                }
                merged[key] = best
            } else {
                order.append(key)
                merged[key] = change
            }
        }
        let packages = order.compactMap { merged[$0] }
        let risky = packages.filter { $0.kind.needsBackup }
        if risky.isEmpty {
            let explanation: String
            if packages.isEmpty {
                explanation = "no MAAS package in this transaction"
            } else {
                let list = packages.map { "\($0.name) (\($0.kind.rawValue))" }.joined(separator: ", ")
                explanation = "no MAAS package is upgraded, downgraded or removed: \(list)"
            }
            return HookDecision(backupNeeded: false, reason: nil, packages: packages, explanation: explanation, warnings: warnings)
        }
        let reason = reasonPrefix + " " + risky.map(\.summary).joined(separator: ", ")
        return HookDecision(backupNeeded: true, reason: reason, packages: packages, explanation: reason, warnings: warnings)
    }
}
