import Foundation
import MSBKit
import MSBSnapshot
import MSBDatabase
import MSBServices
import MSBArchive
import MSBPackages
import MSBRegion
import LibPQ
import Yams
#if canImport(Glibc)
import Glibc
#endif

/// Options of `restore` (and of `rollback`, which restores and then reinstalls packages).
public struct RestoreOptions: Sendable {
    /// Restore over an installed MAAS of another major.minor version.
    public var force = false
    /// Go on while other region controllers are connected to the database (README "Region layouts").
    public var forceOtherRegions = false
    public var lockTimeout: Double = 30
    /// Asked once the plan is known and before anything changes; false cancels. nil: go ahead.
    public var confirm: (@Sendable (RestorePlan) async -> Bool)?
    public var log: LogSink?
    public var command = "restore"
    /// Rollback: the installed version is expected to differ.
    public var skipVersionGuard = false
    /// --allow-unsigned: accept an archive without a signature (made before archives were signed).
    public var allowUnsigned = false
    /// `restore --from-remote latest`: the manifest must name this host.
    public var expectedHost: String?
    public init() {}
}

/// What restore will do, known before it changes anything.
public struct RestorePlan: Sendable, Codable {
    public struct PathPlan: Sendable, Codable {
        public var path: String
        public var live: String
        /// rename, contents or create (see TreeSwap).
        public var mode: String
        public var aside: String
        public var carriedOver: [String]
        public var bytes: Int64
    }
    public var archive: String
    public var createdAt: String
    public var reason: String
    public var backupHost: String
    public var backupMaasVersion: String?
    public var installedMaasVersion: String?
    /// "same", "unknown", "forced (3.4 over 3.5)", "skipped (rollback)".
    public var versionCheck: String
    public var database: String
    public var databases: [String]
    public var paths: [PathPlan]
    public var servicesToStop: [String]
    /// The `maas-region dbupgrade` run after the restore (patch-level version change), if any.
    public var dbUpgrade: String? = nil
    /// Other regions connected at the time (only with --force-other-regions).
    public var otherRegions: [String] = []
    /// The other regions recorded at backup time (and those connected now), each with what it needs.
    public var peers: [String] = []
    /// What this restore does not cover, or what was overridden (also in the result's warnings).
    public var warnings: [String] = []
    /// The new databases, the names the current ones will be kept under, the role's privileges, free space.
    public var databaseRestore: DatabaseRestorePlan?
}

public struct RestoreResult: Sendable, Codable {
    public var status: String
    public var archive: String
    public var plan: RestorePlan
    public var verify: VerifyReport
    public var database: DatabaseCheckResult
    /// psql errors that a --clean restore expects (roles that exist already).
    public var expectedPsqlErrors: Int
    /// Where the previous files are kept (never deleted by the tool).
    public var previousFiles: [String]
    /// The previous databases, kept under `<name>_pre_restore_<time>` (never dropped by the tool).
    public var previousDatabases: [String]
    /// How to drop them once the restore is known good.
    public var dropPreviousDatabases: [String]
    /// The stopped units that are active again.
    public var servicesStarted: [String]
    /// Stopped units that systemd left inactive because a `Condition*=` does not hold yet (not a failure).
    public var servicesInactiveByCondition: [String] = []
    /// Stopped units that no longer exist (their package is gone): not started.
    public var servicesGone: [String] = []
    /// Stopped units not started here but left to the unit they are bound to (maas-dhcpd and
    /// maas-dhcpd6 to maas-rackd, which starts them once it has written their configuration),
    /// with their state when the restore ended.
    public var servicesLeftToOwner: [LeftUnit] = []
    /// From the stop of MAAS to the end of its start (the dump is loaded and checked before the
    /// stop; the database swap, the files and the start are inside it).
    public var downtimeMs: Double = 0
    /// Loading dump.sql into the new databases (`database.load_jobs` sessions each), MAAS running.
    public var loadMs: Double = 0
    /// When the restored rack secret differs from the one the host had: the command that registers
    /// the rack controllers again. The only place a secret is shown.
    public var rackRegisterCommand: String?
    public var packages: [String: String]?
    public var warnings: [String]
    public var durationMs: Double
    /// MAAS 3.5+: the restored image store against the restored image rows (nil: no `images` in the manifest).
    public var images: ImageStoreReport? = nil
}
