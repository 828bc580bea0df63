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

/// `restore ARCHIVE`: verify, version guard, lock; load the database and extract the files while
/// MAAS runs; stop MAAS, swap the database and the files in by renames, start and check.
/// Any failure puts the previous files back and starts the services again, and says what state the
/// database is in.
public struct RestorePipeline: Sendable {
    public let config: Config
    public let options: RestoreOptions
    package let services: any ServiceManager

    public init(config: Config, options: RestoreOptions, services: (any ServiceManager)? = nil) throws {
        self.config = config
        self.options = options
        self.services = try services ?? Systemctl()
    }

    package func log(_ level: LogLevel, _ s: String) { options.log?(level, s) }


    /// Everything restore decides before it changes anything (rollback --dry-run prints it).
    package struct Prepared {
        /// The archive, opened once: every later read goes through `source.readPath`.
        package var source: ArchiveSource
        package var path: String
        package var manifest: Manifest
        package var verify: VerifyReport
        package var plan: RestorePlan
        package var swaps: [TreeSwap]
        package var target: PostgresTarget
        package var psql: String
        package var database: DatabaseRestorePlan
    }

    package func prepare(archive: String) async throws -> Prepared {
        try Privilege.requireRoot(options.command)
        try await RegionLayout.refuseSnap(config, services: services, command: options.command)
        let source = try ArchiveVerifier.open(archive, config: config)
        let path = source.path
        log(.info, "verifying \(path)")
        let (manifest, report): (Manifest, VerifyReport)
        do {
            (manifest, report) = try await ArchiveVerifier.verify(source, config: config, allowUnsigned: options.allowUnsigned,
                                                                  checkInterrupted: { try Interruption.check() })
            if let host = options.expectedHost, manifest.host != host {
                throw BackupError.data("the copy's manifest names the host \(manifest.host), not this host \(host)",
                                       hint: "`latest` means this host's newest copy; give another host's copy by its snapshot id, with that host's key in trusted_keys")
            }
        } catch let e as BackupError where e.code == .dataError {
            VerifiedStamp.remove(archive: path)
            throw BackupError.data("refusing to \(options.command): \(e.message)", hint: "nothing was changed; " + (e.hint ?? "use another backup"))
        }
        if report.signedBy == "unsigned" {
            log(.warning, "warning: \(path) is not signed; --allow-unsigned skips the check that this host or a trusted key wrote its manifest (its members are still checked against the manifest)")
        }
        VerifiedStamp.write(archive: path, sha256: report.sha256, deep: false, opened: source.status)
        try FaultPoint.hit("restore-verify")

        // Version guard: the archive's MAAS major.minor against the installed one.
        let installed = await InstalledPackages.installed(root: config.root)
        let installedVersion = MaasPackages.version(in: installed)
        let have = installedVersion.flatMap(Manifest.majorMinor), want = manifest.maasMajorMinor
        var versionCheck = "same"
        if options.skipVersionGuard {
            versionCheck = "skipped (\(options.command))"
        } else if have == nil || want == nil {
            versionCheck = "unknown"
        } else if have != want {
            guard options.force else {
                throw BackupError.unavailable("the backup is of MAAS \(want!) but MAAS \(have!) is installed: its database schema would not fit",
                                              hint: "install MAAS \(want!) first, use `maas-snapshot-backup rollback` for a pre-upgrade backup, or give --force")
            }
            versionCheck = "forced (\(want!) over \(have!))"
        }
        let dbUpgrade = options.skipVersionGuard ? nil : try RegionChecks.dbUpgradeNeeded(backup: manifest.maasVersion, installed: installedVersion)

        let target = try PostgresTarget.resolveForRestore(config, fallbackDatabase: manifest.database.maasDatabase)
        let tmp = try PrivateDir.makeTemporary()
        defer { tmp.remove() }
        let passfile = try target.writePassfile(in: tmp.path)
        let db = try PostgresAdapter(target: target).preflight(passfile: passfile, maasDatabaseMayBeMissing: true)
        var regions = try RegionChecks.check(config: config, target: target, passfile: passfile,
                                             force: options.forceOtherRegions, command: options.command, manifest: manifest)
        if let dbUpgrade { regions.warnings.append(dbUpgrade) }
        for x in regions.peers { log(.info, "other region: \(x)") }
        let bin = target.binDir ?? "/usr/lib/postgresql/\(db.serverVersionNum / 10000)/bin"
        let psql = bin + "/psql"
        guard FileManager.default.isExecutableFile(atPath: psql) else {
            throw BackupError.unavailable("\(psql) is missing", hint: PostgresAdapter.clientPackageHint(major: db.serverVersionNum / 10000))
        }

        let stamp = ArchiveName.timestamp(Date())
        let dbPlan = try await DatabaseSwap.preflight(target: target, manifest: manifest, psql: psql, stamp: stamp,
                                                      passfile: passfile, archive: source.readPath)
        var swaps: [TreeSwap] = []
        for p in manifest.paths {
            swaps.append(try TreeSwap.plan(path: p.path, config: config, manifest: manifest, stamp: stamp))
        }
        try TreeSwap.checkSpace(swaps)
        let active = try await services.activeUnits(config.services)
        let plan = RestorePlan(
            archive: path, createdAt: manifest.createdAt, reason: manifest.reason, backupHost: manifest.host,
            backupMaasVersion: manifest.maasVersion, installedMaasVersion: installedVersion, versionCheck: versionCheck,
            database: target.display, databases: manifest.database.databases,
            paths: swaps.map { .init(path: $0.path, live: $0.live, mode: $0.mode.rawValue, aside: $0.aside,
                                     carriedOver: $0.keep + $0.leftInPlace.filter { $0 != TreeSwap.snapshotFolder && $0 != "lost+found" }, bytes: $0.restoreBytes) },
            servicesToStop: active, dbUpgrade: dbUpgrade, otherRegions: regions.otherRegions, peers: regions.peers, warnings: regions.warnings,
            databaseRestore: dbPlan)
        return Prepared(source: source, path: path, manifest: manifest, verify: report, plan: plan, swaps: swaps, target: target, psql: psql,
                        database: dbPlan)
    }

    public func dryRun(archive: String) async throws -> RestorePlan {
        try await prepare(archive: archive).plan
    }

    /// After the plan is confirmed: the lock and the journal, and the run that holds what changes.
    package func begin(_ prepared: Prepared) async throws -> RestoreRun {
        if let confirm = options.confirm, await !confirm(prepared.plan) {
            throw RestoreOutcomes.cancelled(options.command)
        }
        let lock = try RunLock(path: config.lockFile, timeout: options.lockTimeout)
        let runID = ArchiveName.timestamp(Date()) + "-\(getpid())"
        do {
            let journal = try RestoreJournal(stateDir: config.stateDir, runID: runID, command: options.command, archive: prepared.path)
            return try RestoreRun(pipeline: self, prepared: prepared, journal: journal, lock: lock)
        } catch {
            lock.release()
            throw error
        }
    }

    /// `restore ARCHIVE`: prepare, then the run's steps in turn; any failure is undone. Recorded
    /// for `status` and the metrics (RestoreOutcomes).
    public func run(archive: String) async throws -> RestoreResult {
        try await RestoreOutcomes.recording(config: config, command: options.command, log: options.log, downtimeMs: { $0.downtimeMs }) {
            try await runUnrecorded(archive: archive)
        }
    }

    package func runUnrecorded(archive: String) async throws -> RestoreResult {
        let clock = Stopwatch()
        let run = try await begin(try await prepare(archive: archive))
        defer { run.end() }
        do {
            // MAAS runs while the dump loads and the files are extracted beside the live ones; it
            // is down from the stop to the start, for renames only.
            try await run.loadDatabase()
            try await run.stageFiles()
            try await run.stopServices()
            try await run.swapDatabase()
            try await run.swapFiles()
            return try await run.startAndCheck(clock: clock)
        } catch {
            throw await run.recoverAfterFailure(error)
        }
    }
}

