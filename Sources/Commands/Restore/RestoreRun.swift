import Foundation
import MSBKit
import MSBSnapshot
import MSBDatabase
import MSBServices
import MSBArchive
import MSBPackages
import MSBRegion
#if canImport(Glibc)
import Glibc
#endif

/// Thrown by the package step of a rollback: the database and files stay restored.
package struct PackageStepError: Error {
    package var message: String

    package init(message: String) {
        self.message = message
    }
}

/// One restore after its plan: everything it changed, so that a failure can be undone.
final package class RestoreRun {
    package let pipeline: RestorePipeline
    package let p: RestorePipeline.Prepared
    package let journal: RestoreJournal
    package var config: Config { pipeline.config }
    package var services: any ServiceManager { pipeline.services }

    package var swaps: [TreeSwap]
    package var stopped: [String] = []
    package var servicesDown = false
    package var database = DatabaseState.untouched
    package var dbNames: [DatabaseNames] = []
    package var step = "prepare"
    package var privateDir: PrivateDir?
    package var filesFinal = false
    /// From the stop to the end of the start (the downtime MAAS feels), and its length once it ended.
    package var downSince: Stopwatch?
    package var downtimeMs: Double = 0
    package var loadMs: Double = 0

    /// Held from `begin` to `end`.
    private let lock: RunLock
    /// The run's private folder (psql's messages, the passfiles), removed at the end.
    package let dir: PrivateDir
    /// The passfile naming the live, new, previous and failed name of each database.
    package let passfile: String?
    package var warnings: [String] = []
    package var expectedPsqlErrors = 0
    package var check: DatabaseCheckResult?
    package var packages: [String: String]?
    /// The rack secret before the restore (a different one afterwards means registering the racks again).
    package var oldSecret: String?
    /// MAAS 3.5+: the restored image store against the restored image rows.
    package var images: ImageStoreReport?

    package init(pipeline: RestorePipeline, prepared: RestorePipeline.Prepared, journal: RestoreJournal, lock: RunLock) throws {
        self.pipeline = pipeline
        self.p = prepared
        self.journal = journal
        self.swaps = prepared.swaps
        self.lock = lock
        let dir = try PrivateDir.makeTemporary()
        do {
            try journal.update { $0.privateDir = dir.path }
            passfile = try prepared.target.writePassfile(in: dir.path, databases: prepared.manifest.database.databases + prepared.database.databases.flatMap(\.all))
        } catch {
            dir.remove()
            throw error
        }
        self.dir = dir
        privateDir = dir
    }

    /// Releases the lock and removes the private folder; the journal stays if something is left to recover.
    package func end() {
        dir.remove()
        privateDir = nil
        lock.release()
    }

    package func log(_ level: LogLevel, _ s: String) { pipeline.log(level, s) }

    package func record() throws {
        let s = swaps, d = database, st = step, ff = filesFinal, names = dbNames
        try journal.update { $0.swaps = s; $0.database = d; $0.phase = st; $0.filesFinal = ff; $0.databases = names }
    }

    /// Stops the active MAAS services (PostgreSQL stays up).
    package func stopServices() async throws {
        log(.debug, "step stopServices: stop the MAAS services")
        step = "stop services"
        let toStop = try await services.activeUnits(config.services)
        try journal.update { $0.stoppedServices = toStop; $0.phase = "stop services" }
        stopped = toStop
        servicesDown = true
        downSince = Stopwatch()
        log(.info, "stopping \(toStop.isEmpty ? "nothing (no MAAS service is active)" : toStop.joined(separator: " "))")
        try await services.stop(toStop)
        try FaultPoint.hit("restore-stop")
        try Interruption.check()
    }

    /// The database, while MAAS still runs: loaded into new databases and checked. The live
    /// databases are not touched until `swapDatabase` (issue 25: MAAS is down only for the swap).
    package func loadDatabase() async throws {
        log(.debug, "step loadDatabase: load dump.sql into new databases while MAAS runs")
        let manifest = p.manifest
        step = "database"
        dbNames = p.database.databases
        let target = p.target, passfile = passfile
        let all = dbNames.map(\.name)
        let names = Dictionary(uniqueKeysWithValues: dbNames.map { ($0.name, $0.restoring) })
        let psqlUser = p.database.psqlRunsAs
        let psqlDir = try DatabaseSwap.psqlFolder(for: psqlUser, in: dir)
        defer { psqlDir.remove() }
        let psqlPassfile = try DatabaseSwap.passfile(target, in: psqlDir, for: psqlUser, names: dbNames)
        database = .loading
        try record()
        log(.info, "loading dump.sql (\(manifest.dump.size) bytes) into \(names.values.sorted().joined(separator: ", ")) with psql as \(psqlUser)")
        let gate = try DatabaseSwap.rolesGate(target: target, passfile: passfile, databases: all)
        let runDir = dir, loginNames = dbNames.flatMap(\.all)
        var loadPlan = DumpLoader.Plan(
            psql: p.psql, osUser: psqlUser, environment: target.environment(passfile: psqlPassfile), names: names,
            maintenanceDatabase: DatabaseSwap.maintenanceDatabase(avoiding: all), roles: gate,
            ownerLogin: { db, owner in
                let login = try DatabaseSwap.ownerLogin(owner, db: db, target: target, passfile: passfile, in: runDir, databases: loginNames)
                self.log(.info, "loading \(db) as its owner \(owner) (psql as \(login.osUser))")
                return login
            },
            create: { spec, copy in
                try DatabaseSwap.create(spec, as: copy, target: target, passfile: passfile, avoiding: all)
                self.log(.info, "created the database \(copy) for \(spec.name)")
                try FaultPoint.hit("restore-db-create")
            })
        let wanted = config.database.effectiveLoadJobs
        let free = DatabaseSwap.freeConnections(target: target, passfile: passfile, avoiding: all)
        loadPlan.jobs = DumpLoader.sessions(wanted: wanted, freeConnections: free)
        if loadPlan.jobs < wanted {
            log(.info, "the server has \(free ?? 0) connection(s) free: loading with \(loadPlan.jobs) psql session(s), not \(wanted) (database.load_jobs), to leave MAAS its share")
        }
        log(.info, "\(loadPlan.jobs) session(s) per database (database.load_jobs)")
        let loading = Stopwatch()
        let outcome = try await DumpLoader.load(archive: p.source.readPath, plan: loadPlan, errorLog: dir.path + "/psql.log")
        loadMs = loading.elapsedMs.ms2
        if outcome.failed {
            let n = outcome.errors.count
            throw BackupError.failed("psql failed to load dump.sql: \(outcome.firstProblem)" + (n > 1 ? " (\(n) errors)" : ""))
        }
        if let first = outcome.refused.first {
            warnings.append("\(outcome.refused.count) role statement(s) of dump.sql were refused for lack of privilege, so the roles were left as they are (first: \(first))")
        }
        expectedPsqlErrors = outcome.expected.count
        for note in outcome.notes { log(.info, note) }
        database = .loaded
        try record()
        try FaultPoint.hit("restore-db-load")
        let check = try DatabaseCheck.compare(manifest: manifest, target: target, passfile: passfile, names: names)
        if let first = check.problems.first {
            throw BackupError.failed("the restored database does not match the backup: \(first)"
                                     + (check.problems.count > 1 ? " (and \(check.problems.count - 1) more)" : ""))
        }
        self.check = check
        warnings += check.warnings
        database = .checked
        try record()
        try FaultPoint.hit("restore-db-check")
        try Interruption.check()
    }

    /// With MAAS stopped: the checked copies swapped in by name; the live databases are kept under
    /// <name>_pre_restore_<time>.
    package func swapDatabase() async throws {
        log(.debug, "step swapDatabase: swap the databases in by name")
        guard let check else { throw BackupError.failed("the database was not loaded and checked before the swap") }
        let target = p.target, passfile = passfile
        step = "database"
        database = .swapping
        try record()
        dbNames = try DatabaseSwap.swapIn(dbNames, target: target, passfile: passfile, log: { self.log(.info, $0) })
        database = .swapped
        try record()
        try FaultPoint.hit("restore-database")
        log(.info, "database restored: \(check.tables) tables, \(check.rows) rows, schema head \(DatabaseCheck.describe(check.schemaHead))"
            + (dbNames.contains(where: \.existed) ? "; the previous one is kept as \(dbNames.filter(\.existed).map(\.previous).joined(separator: ", "))" : ""))
        try Interruption.check()
    }

    /// The files, while MAAS still runs: the archive's copy of each folder extracted into its
    /// staging folder on the live folder's filesystem; nothing live is touched (issue 25).
    package func stageFiles() async throws {
        log(.debug, "step stageFiles: extract the files into staging folders while MAAS runs")
        step = "files"
        var destinations: [(member: String, destination: String)] = []
        let root = config.root
        for i in swaps.indices {
            var swap = swaps[i]
            defer { swaps[i] = swap }
            let staging = try swap.beginStaging { s in self.swaps[i] = s; try self.record() }
            destinations.append((swap.member, config.member(of: staging)))
        }
        let readPath = p.source.readPath, to = destinations
        let count = try await Blocking.run {
            try Extractor.extract(archive: readPath, root: root, into: to, checkInterrupted: { try Interruption.check() })
        }
        log(.info, "extracted \(count) files and folders into \(swaps.compactMap(\.staging).joined(separator: ", ")) while MAAS runs")
        try FaultPoint.hit("restore-extract")
        try Interruption.check()
    }

    /// With MAAS stopped: each live folder moved aside, the staged one renamed into its place,
    /// what is kept carried over. Renames only: the downtime does not grow with the files.
    package func swapFiles() async throws {
        log(.debug, "step swapFiles: move the live folders aside and the staged ones in")
        step = "files"
        oldSecret = RegionLayout.rackSecret(config)
        for i in swaps.indices {
            var swap = swaps[i]
            defer { swaps[i] = swap }
            try swap.moveAside { s in self.swaps[i] = s; try self.record() }
            if swap.mode != .create { log(.info, "moved the previous \(swap.live) aside to \(swap.aside)") }
        }
        try FaultPoint.hit("restore-aside")
        for i in swaps.indices {
            var swap = swaps[i]
            defer { swaps[i] = swap }
            try swap.moveStagedIn(record: { s in self.swaps[i] = s; try self.record() }, log: { self.log($0, $1) })
        }
        try FaultPoint.hit("restore-files")
        for i in swaps.indices {
            var swap = swaps[i]
            defer { swaps[i] = swap }
            try swap.carryKept(record: { s in self.swaps[i] = s; try self.record() }, log: { self.log($0, $1) })
        }
        images = ImageStoreReport.make(manifest: p.manifest, config: config)
        images?.lines.forEach { log(.info, "images: " + $0) }
        try FaultPoint.hit("restore-keep")
        try Interruption.check()
    }

    /// From here the restored database and files stay, whatever fails next (a rollback's package step).
    package func keepRestoredState(step: String) throws {
        self.step = step
        filesFinal = true
        try record()
    }

    /// `maas-region dbupgrade` when the installed MAAS differs from the backup's by a patch version;
    /// then the services started, waited for, and the schema head checked.
    package func startAndCheck(clock: Stopwatch) async throws -> RestoreResult {
        log(.debug, "step startAndCheck: start the MAAS services, check them and the schema head")
        let manifest = p.manifest
        if p.plan.dbUpgrade != nil { step = "dbupgrade"; try await RegionChecks.dbUpgrade(log: { self.log($0, $1) }) }
        step = "start services"
        let units = try await startServices()
        try FaultPoint.hit("restore-start")
        if !units.ok {
            throw BackupError.failed("\(units.failed.map(\.display).joined(separator: "; ")) after the restore (waited up to \(config.startTimeout) s for each unit: start_timeout)",
                                     hint: "see journalctl -u \(units.failed[0].unit)")
        }
        let head = try DatabaseCheck.schemaHead(target: p.target, database: manifest.database.maasDatabase, passfile: passfile)
        if head != manifest.database.schemaHead {
            throw BackupError.failed("after the start the schema head is \(DatabaseCheck.describe(head)), not the backup's \(DatabaseCheck.describe(manifest.database.schemaHead))")
        }
        filesFinal = true
        step = "done"
        database = .restored
        try record()
        journal.close()

        // Rack controllers register with the region's secret; a different one means registering again.
        var rack: String?
        if let newSecret = RegionLayout.rackSecret(config), newSecret != oldSecret {
            rack = "maas-rack register --url \(RegionLayout.maasURL(config) ?? "http://<region>:5240/MAAS") --secret \(newSecret)"
        }
        let previous = swaps.filter { $0.mode != .create }.map(\.aside)
        let previousDBs = dbNames.filter(\.existed).map(\.previous)
        guard let check else { throw BackupError.failed("the database step did not run") }
        var result = RestoreResult(status: "ok", archive: p.path, plan: p.plan, verify: p.verify, database: check,
                             expectedPsqlErrors: expectedPsqlErrors, previousFiles: previous,
                             previousDatabases: previousDBs, dropPreviousDatabases: previousDBs.map { DatabaseSwap.dropCommand($0, target: p.target) },
                             servicesStarted: units.active, servicesInactiveByCondition: units.skippedByCondition,
                             servicesGone: units.gone, rackRegisterCommand: rack, packages: packages,
                             warnings: p.plan.warnings + warnings, durationMs: clock.elapsedMs.ms2)
        result.images = images
        result.servicesLeftToOwner = units.leftToOwner
        result.downtimeMs = downtimeMs
        result.loadMs = loadMs
        return result
    }

    /// Starts the stopped units that still exist and waits for each, in wall-clock time, until it
    /// is active, failed, or skipped by its own `Condition*=` (README "Restore"). Units that no
    /// longer exist leave `stopped` and the journal, so that nothing retries them.
    @discardableResult
    package func startServices() async throws -> UnitStartOutcome {
        guard servicesDown else { return UnitStartOutcome() }
        let outcome = try await services.startAndWait(Array(stopped.reversed()), timeout: Double(config.startTimeout))
        servicesDown = false
        downtimeMs = downSince?.elapsedMs.ms2 ?? 0
        stopped = stopped.filter { !outcome.gone.contains($0) }
        let left = stopped
        try? journal.update { $0.servicesRestarted = true; $0.stoppedServices = left }
        if !outcome.active.isEmpty { log(.info, "started \(outcome.active.joined(separator: " "))") }
        for n in outcome.notes { log(.info, n) }
        return outcome
    }
}
