import Foundation
import MSBKit
import MSBBackupSet
import MSBSnapshot
import MSBDatabase
import MSBServices
import MSBArchive
import MSBPackages
import MSBRegion
import MSBPrune
import MSBCopy
import SystemPackage
import Streams
#if canImport(Glibc)
import Glibc
#endif

/// Options of one backup run (from the command line).
public struct BackupOptions: Sendable {
    public var reason = "manual"
    public var snapshot: Config.SnapshotChoice?
    /// `--quiesce`; nil: the config's.
    public var quiesce: Config.Quiesce?
    public var dryRun = false
    public var lockTimeout: Double = 30
    /// Our own executable, for the dead-man guard (nil: no guard process).
    public var guardExecutable: String?
    /// Human progress lines (stderr on a terminal).
    public var log: LogSink?
    /// Archive progress: bytes read so far, estimated total.
    public var progress: (@Sendable (Int64, Int64) -> Void)?
    /// Called once when the run ends, however it ends (the progress bar's last line).
    public var progressDone: (@Sendable () -> Void)?
    /// .deb files to keep beside the archive (pre-upgrade backups): package -> path.
    public var debsToSave: [String: String] = [:]
    /// When the destination is short of space, apply the retention first and say what it removed:
    /// a pre-upgrade backup's rule (it would otherwise block the upgrade), decided here only.
    public var pruneWhenShort: Bool { BackupReason(recorded: reason) == .preUpgrade }
    /// How to run `copy` detached (the copy of a pre-upgrade backup, `remote.copy: after-backup`).
    public var copyCommand: CopyCommand?
    public init() {}
}

/// What a finished backup reports (`--json` prints it).
public struct BackupResult: Sendable, Codable {
    public var status: String
    public var archive: String?
    public var sizeBytes: Int64
    public var snapshotMethod: String
    /// "freeze" or "stop".
    public var quiesce: String
    public var servicesStopped: [String]
    public var servicesFrozen: [String]
    /// From the first stop (freeze) to the start (thaw) returning.
    public var downtimeMs: Double
    public var window: [Manifest.WindowStep]
    public var durationMs: Double
    public var reason: String
    public var dryRun: Bool
    public var plan: BackupPlan?
    /// The retention applied after the backup (`retention.after_backup`), or before it when the
    /// destination was short of space for a pre-upgrade backup.
    public var pruned: PruneReport?
    /// What this backup does not cover (secrets in Vault, other regions' files).
    public var warnings: [String] = []
    /// Later steps that failed although the backup is written (the retention after it, the
    /// metrics textfile): the run exits 3.
    public var failedSteps: [String] = []
    /// The off-host copy after the backup (`remote.copy: after-backup`): ok, failed or scheduled.
    public var copy: CopyReport?

    package init(status: String, archive: String? = nil, sizeBytes: Int64, snapshotMethod: String, quiesce: String = "stop", servicesStopped: [String], servicesFrozen: [String] = [], downtimeMs: Double, window: [Manifest.WindowStep], durationMs: Double, reason: String, dryRun: Bool, plan: BackupPlan? = nil, pruned: PruneReport? = nil, warnings: [String] = [], failedSteps: [String] = []) {
        self.status = status
        self.archive = archive
        self.sizeBytes = sizeBytes
        self.snapshotMethod = snapshotMethod
        self.quiesce = quiesce
        self.servicesStopped = servicesStopped
        self.servicesFrozen = servicesFrozen
        self.downtimeMs = downtimeMs
        self.window = window
        self.durationMs = durationMs
        self.reason = reason
        self.dryRun = dryRun
        self.plan = plan
        self.pruned = pruned
        self.warnings = warnings
        self.failedSteps = failedSteps
    }
}

/// The backup pipeline: preflight, the freeze window, the archive while MAAS runs, finish.
public struct BackupPipeline: Sendable {
    public let config: Config
    public let options: BackupOptions
    package let services: any ServiceManager

    public init(config: Config, options: BackupOptions, services: (any ServiceManager)? = nil) throws {
        self.config = config
        self.options = options
        self.services = try services ?? Systemctl()
        self.drivers = SnapshotDrivers.all(config)
    }

    package func log(_ level: LogLevel, _ s: String) { options.log?(level, s) }

    /// Made once per pipeline: a driver keeps what preflight decided (LVM: the COW sizes).
    package let drivers: [any SnapshotDriver]

    // MARK: - Preflight

    /// Decides everything and changes nothing.
    public func preflight(passfile: String?) async throws -> BackupPlan {
        try Privilege.requireRoot("maas-snapshot-backup")
        let choice = options.snapshot ?? config.snapshot
        let target = try PostgresTarget.resolve(config)
        let pg = PostgresAdapter(target: target)
        let db = try pg.preflight(passfile: passfile)
        let region = try regionFacts(target: target, passfile: passfile)

        // Image files the backup leaves out (synced ones, by default) count neither in the size
        // estimate nor against copy_in_window_max.
        let (imagesOut, imagesOutBytes) = plannedLeftOut(pg: pg, passfile: passfile)
        let skip = skipper(leftOut: imagesOut)
        var items: [BackupPlan.Item] = []
        var volumes: [Volume] = []
        for p in config.paths {
            let live = config.live(p)
            var st = stat()
            guard lstat(live, &st) == 0 else {
                throw BackupError.unavailable("\(live) does not exist", hint: "check paths and root in the config")
            }
            let size = treeSize(live, skip: { skip(member(of: $0)) })
            let (method, volume) = try snapshotMethod(live, size: size, choice: choice, volumes: &volumes)
            items.append(.init(path: p, livePath: live, method: method, volume: volume, sizeBytes: size))
        }
        for d in drivers {
            let vs = volumes.filter { $0.method == d.method }
            if !vs.isEmpty { try d.checkCapacity(vs) }
        }

        // Destination: creatable, and room for the archive plus the dump's spool.
        let dest = config.destination
        let probe = FileSystem.nearestExisting(dest)
        if let why = Privilege.notWritable(dest) {
            throw BackupError(.cantCreate, "the destination \(why)", hint: "fix its permissions or set destination in the config")
        }
        for item in items where isUnder(config.live(dest), item.livePath) {
            throw BackupError.config("the destination \(dest) is inside the backed-up path \(item.path)", hint: "choose a destination outside \(config.paths.joined(separator: ", "))")
        }
        let files = items.reduce(Int64(0)) { $0 + $1.sizeBytes }
        let estimate = files + db.sizeBytes * 2
        var free = FileSystem.freeBytes(probe) ?? Int64.max
        if free < estimate && options.pruneWhenShort && !options.dryRun {
            // A pre-upgrade backup that fails blocks the upgrade: old backups that retention would
            // remove anyway go first (the run lock is held).
            let report = try Prune.run(config: config, dryRun: false, lockHeld: true)
            prunedInPreflight.set(report)
            if !report.removed.isEmpty {
                log(.info, "not enough free space in \(dest): removed \(report.removed.count) old backup(s) by the retention (\(Human.bytes(report.freedBytes)) freed): \(report.removed.map { ($0.archive as NSString).lastPathComponent }.joined(separator: ", "))")
            }
            free = FileSystem.freeBytes(probe) ?? Int64.max
        }
        guard free >= estimate else {
            throw BackupError(.cantCreate, "not enough free space in \(dest): \(Human.bytes(free)) free, about \(Human.bytes(estimate)) needed",
                              hint: "free some space, run prune, or set destination elsewhere")
        }

        let active = try await services.activeUnits(config.services)
        let inactive = config.services.filter { !active.contains($0) }
        let (how, why) = try await quiesceChoice(active: active, wholeRun: choice == .none)
        var plan = BackupPlan(items: items, volumes: volumes, servicesToStop: how == .stop ? active : [], servicesInactive: inactive,
                              database: db, databaseTarget: target.display, destination: dest, estimatedBytes: estimate,
                              freeBytes: free, stopForWholeRun: choice == .none)
        (plan.quiesce, plan.quiesceReason, plan.servicesToFreeze) = (how, why, how == .freeze ? active : [])
        (plan.maasId, plan.otherRegions, plan.vaultUrl, plan.warnings) = region
        if !imagesOut.isEmpty { (plan.imageFilesLeftOut, plan.imageBytesLeftOut) = (imagesOut.count, imagesOutBytes) }
        return plan
    }

    /// How the path `live` (`size` bytes) is taken: its volume's snapshot (the volume added to
    /// `volumes` once), a copy in the window when it is on no volume a driver can snapshot and
    /// small enough, or none (`--snapshot none`).
    func snapshotMethod(_ live: String, size: Int64, choice: Config.SnapshotChoice, volumes: inout [Volume]) throws -> (SnapshotMethod, Volume?) {
        if choice == .none { return (.none, nil) }
        var volume: Volume?
        let usable = drivers.filter { choice == .auto || $0.method.rawValue == choice.rawValue }
        for d in usable {
            if let v = try d.probe(path: live) { volume = v; break }
        }
        if let v = volume {
            if !volumes.contains(v) { volumes.append(v) }
            return (v.method, v)
        }
        if size <= config.copyInWindowMax { return (.copy, nil) }
        throw BackupError.unavailable(
            "\(live) (\(Human.bytes(size))) is not on a \(choice == .auto ? "Btrfs subvolume or LVM volume" : choice.rawValue + " volume") and is over copy_in_window_max (\(Human.bytes(config.copyInWindowMax)))",
            hint: "put it on Btrfs or LVM, raise copy_in_window_max, or run with --snapshot none (services stay stopped for the whole run)")
    }

    /// Freeze or stop, and why (`quiesce`, `--quiesce`): `auto` freezes when every active unit can be
    /// frozen, else stops; `freeze` refuses to run when they cannot.
    package func quiesceChoice(active: [String], wholeRun: Bool) async throws -> (Config.Quiesce, String) {
        let asked = options.quiesce ?? config.quiesce
        switch asked {
        case .stop:
            return (.stop, "quiesce is stop: the services are stopped and started again")
        case .freeze, .auto:
            if wholeRun {
                if asked == .freeze {
                    throw BackupError.config("quiesce freeze cannot hold MAAS for a whole run (--snapshot none)",
                                             hint: "use --quiesce stop, or a snapshot method")
                }
                return (.stop, "snapshot none keeps MAAS down for the whole run: stopped, not frozen")
            }
            if active.isEmpty { return (.stop, "no MAAS service is active: nothing to freeze or stop") }
            if let why = await services.cannotFreeze(active) {
                if asked == .freeze {
                    throw BackupError.unavailable("quiesce freeze: the MAAS services cannot be frozen here: \(why)",
                                                  hint: "set quiesce: auto or stop, or use --quiesce stop")
                }
                return (.stop, "stopped, since they cannot be frozen here: \(why)")
            }
            return (.freeze, asked == .freeze ? "quiesce is freeze" : "every active MAAS unit can be frozen (cgroup v2, systemd freezer, system bus)")
        }
    }

    /// This region's id, the other regions connected to the database, Vault, and the warnings they
    /// call for (README "Region layouts").
    package func regionFacts(target: PostgresTarget, passfile: String?) throws -> (String?, [String], String?, [String]) {
        let own = RegionLayout.maasID(config)
        let others = RegionLayout.ids(try RegionLayout.otherRegions(target: target, database: target.maasDatabase, passfile: passfile, ownID: own))
        let vault = RegionLayout.vaultURL(config)
        var warnings: [String] = []
        if let vault { warnings.append(RegionLayout.vaultWarning(vault)) }
        if !others.isEmpty { warnings.append(RegionLayout.otherRegionsWarning(others)) }
        return (own, others, vault, warnings)
    }

    /// Archive member name of a live path: relative to root, without a leading slash.
    package func member(of live: String) -> String { config.member(of: live) }

    /// Members left out: the configured excludes (boot-resources by default), our own snapshot folders.
    /// `leftOut`: the members of the image files `images` leaves out.
    package func skipper(leftOut: Set<String> = []) -> @Sendable (String) -> Bool {
        let rule: @Sendable (String) -> Bool = Self.skipRule(exclude: config.exclude)
        if leftOut.isEmpty { return rule }
        let withImages: @Sendable (String) -> Bool = { m in leftOut.contains(m) || rule(m) }
        return withImages
    }

    /// The rule `skipper` applies to a member (a path below the root, no leading "/"): left out when
    /// it is one of `exclude` (paths as the config writes them, "/var/lib/maas/boot-resources") or
    /// below one, or is a Btrfs snapshot folder of ours. Public for the archive benchmark.
    public static func skipRule(exclude: [String]) -> @Sendable (String) -> Bool {
        let excluded = exclude.map { p -> String in
            var m = p
            while m.hasPrefix("/") { m.removeFirst() }
            return m
        }
        return { m in
            if m.hasSuffix("/" + BtrfsSnapshotDriver.snapshotFolder) || m == BtrfsSnapshotDriver.snapshotFolder { return true }
            return excluded.contains { isUnder(m, $0) }
        }
    }

    // MARK: - Run

    /// A pruning done by preflight (pre-upgrade backup short of space), for the result.
    package let prunedInPreflight = PruneBox()

    final package class PruneBox: @unchecked Sendable {
        private let lock = NSLock()
        private var value: PruneReport?
        package func set(_ v: PruneReport) { lock.lock(); value = v; lock.unlock() }
        package func get() -> PruneReport? { lock.lock(); defer { lock.unlock() }; return value }
    }

    /// A backup run; the metrics textfile (when configured) is written whatever the outcome.
    public func run() async throws -> BackupResult {
        let clock = Stopwatch()
        defer { options.progressDone?() }
        do {
            var r = try await runLocked(clock: clock)
            // The record in state_dir always (status reads it), the textfile when configured. Only
            // a textfile the operator asked for makes the run partial; status's record alone is a warning.
            if !r.dryRun, let w = Metrics.write(stateDir: config.stateDir, path: config.metricsTextfile, outcome: .success(r)) {
                if config.metricsTextfile != nil { r.failedSteps.append(w) } else { r.warnings.append(w) }
            }
            return r
        } catch {
            if !options.dryRun, (try? TrustedFolder.check(config.stateDir, key: "state_dir")) != nil {
                let code = (error as? BackupError)?.code ?? .failed
                Metrics.write(stateDir: config.stateDir, path: config.metricsTextfile, outcome: .failure(exitCode: code.rawValue, durationMs: clock.elapsedMs.ms2, reason: options.reason))
            }
            throw error
        }
    }

    package func runLocked(clock: Stopwatch) async throws -> BackupResult {
        try Privilege.requireRoot("maas-snapshot-backup")
        // Before anything reads regiond.conf or the database: a snap MAAS has neither where we look.
        try await RegionLayout.refuseSnap(config, services: services, command: "backup")
        let lock = try RunLock(path: config.lockFile, timeout: options.lockTimeout)
        defer { lock.release() }

        if options.dryRun {
            let plan = try await preflight(passfile: nil)
            _ = try HostKey.load(path: config.signingKey)  // a key file in a bad state fails here too
            return BackupResult(status: "dry-run", archive: nil, sizeBytes: 0, snapshotMethod: plan.methodSummary,
                                quiesce: plan.quiesce.rawValue, servicesStopped: [], downtimeMs: 0, window: [], durationMs: clock.elapsedMs.ms2,
                                reason: options.reason, dryRun: true, plan: plan, warnings: plan.warnings)
        }
        // Preflight with a passfile in memory only: the private folder is made once preflight passes.
        let target = try PostgresTarget.resolve(config)
        let plan: BackupPlan
        do {
            // A passfile is needed to connect when there is a password; make it in a private temp folder.
            let tmp = try PrivateDir.makeTemporary()
            defer { tmp.remove() }
            plan = try await preflight(passfile: try target.writePassfile(in: tmp.path))
        }
        log(.info, "preflight passed: \(plan.items.map { "\($0.path) by \($0.method.rawValue)" }.joined(separator: ", ")); \(plan.quiesce == .freeze ? "freezing" : "stopping") \(plan.servicesQuiesced.isEmpty ? "nothing" : plan.servicesQuiesced.joined(separator: " ")) (\(plan.quiesceReason))")

        // The signing key: made on the first backup, refused (before anything changes) when another
        // user owns it or others can read it.
        let (key, created) = try HostKey.loadOrCreate(path: config.signingKey)
        if created { log(.info, "made this host's signing key \(key.path) (key \(key.publicKey.id)); keep a copy beside the restic password") }

        let runID = ArchiveName.timestamp(Date()) + "-\(getpid())"
        let journal = try RunJournal(stateDir: config.stateDir, runID: runID, command: "backup")
        var run = RunState(pipeline: self, plan: plan, runID: runID, journal: journal, target: target)
        run.signingKey = key
        var result: BackupResult
        do {
            result = try await run.execute(clock: clock)
            journal.close()
            result.warnings = plan.warnings + result.warnings
        } catch {
            await run.cleanupAfterFailure()
            // Services that would not thaw or start: the journal stays for `status` and `recover`.
            if !run.servicesDown { journal.close() }
            throw Self.destinationFull(error, destination: config.destination)
        }
        result.pruned = prunedInPreflight.get()
        // Retention, now that a newer complete backup exists (the lock is still held).
        if config.retention.afterBackup { applyRetention(to: &result) }
        // The off-host copy (the lock is still held, so the retention cannot remove the archive under it).
        if let remote = config.remote, remote.copy == .afterBackup, let archive = result.archive {
            let copy = await AfterBackupCopy.run(config: config, archive: archive, reason: options.reason, command: options.copyCommand, log: options.log)
            result.copy = copy
            if copy.status == "failed" { result.failedSteps.append(copy.error ?? "the copy to \(copy.repository) failed") }
        }
        result.durationMs = clock.elapsedMs.ms2
        return result
    }
}

extension BackupPipeline {
    /// A write that failed with ENOSPC or EDQUOT (the archive, the dump's spool, the sidecar: their
    /// errors keep the errno, see ErrnoCarrying) becomes the documented "cannot create the output" error, 73.
    static package func destinationFull(_ error: any Error, destination: String) -> any Error {
        if let e = error as? BackupError, e.code != .failed { return error }
        guard let e = (error as? any ErrnoCarrying)?.carriedErrno, e.isOutOfSpace else { return error }
        return BackupError(.cantCreate, "the destination \(destination) filled up while the backup was written (\(error)); nothing was kept",
                           hint: "free space there, prune old backups, or set destination in the config")
    }

    /// Retention after a backup (the lock still held): recorded as the last prune for `status`
    /// and the metrics, added to what the preflight pruned; a failure is a failed step.
    func applyRetention(to result: inout BackupResult) {
        do {
            let report = try Prune.run(config: config, dryRun: false, lockHeld: true)
            // `status` and the metrics show the retention as the last prune.
            if let w = PruneMetrics.record(config: config, code: report.errors.isEmpty ? .success : .failed,
                                           removed: report.removed.count, freedBytes: report.freedBytes) {
                result.warnings.append(w)
            }
            if !report.removed.isEmpty {
                log(.info, "retention removed \(report.removed.count) old backup(s): \(report.removed.map { ($0.archive as NSString).lastPathComponent }.joined(separator: ", "))")
            }
            result.failedSteps += report.errors.map { "retention: \($0)" }
            if var before = result.pruned {
                before.removed += report.removed
                before.kept = report.kept
                before.freedBytes += report.freedBytes
                before.errors += report.errors
                result.pruned = before
            } else {
                result.pruned = report
            }
        } catch {
            PruneMetrics.record(config: config, code: (error as? BackupError)?.code ?? .failed, removed: 0, freedBytes: 0)
            result.failedSteps.append("retention after the backup failed: \(error)")
        }
    }
}
