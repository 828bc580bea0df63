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
    public var log: (@Sendable (String) -> Void)?
    public var command = "restore"
    /// Rollback: the installed version is expected to differ.
    public var skipVersionGuard = false
    /// Rollback: runs after the files are restored and before the services start; returns the
    /// MAAS package versions installed afterwards.
    public var packageStep: (@Sendable (Manifest) async throws -> [String: String])?
    /// Rollback: more checks once the archive is verified, before anything changes.
    public var preflight: (@Sendable (Manifest) async throws -> Void)?
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
    public var servicesStarted: [String]
    /// When the restored rack secret differs from the one the host had: the command that registers
    /// the rack controllers again. The only place a secret is shown.
    public var rackRegisterCommand: String?
    public var packages: [String: String]?
    public var warnings: [String]
    public var durationMs: Double
}

/// `restore ARCHIVE`: verify, version guard, lock and stop MAAS, database, files, start and check.
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

    package func log(_ s: String) { options.log?(s) }


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
        guard geteuid() == 0 else {
            throw BackupError(.noPermission, "\(options.command) must run as root", hint: "run it with sudo")
        }
        try await RegionLayout.refuseSnap(config, services: services, command: options.command)
        let source = try ArchiveVerifier.open(archive, config: config)
        let path = source.path
        log("verifying \(path)")
        let (manifest, report): (Manifest, VerifyReport)
        do {
            (manifest, report) = try await ArchiveVerifier.verify(source, config: config, checkInterrupted: { try Interruption.check() })
        } catch let e as BackupError where e.code == .dataError {
            VerifiedStamp.remove(archive: path)
            throw BackupError.data("refusing to \(options.command): \(e.message)", hint: "nothing was changed; " + (e.hint ?? "use another backup"))
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

        try await options.preflight?(manifest)

        let target = try PostgresTarget.resolveForRestore(config, fallbackDatabase: manifest.database.maasDatabase)
        let tmp = try PrivateDir.makeTemporary()
        defer { tmp.remove() }
        let passfile = try target.writePassfile(in: tmp.path)
        let db = try PostgresAdapter(target: target).preflight(passfile: passfile, maasDatabaseMayBeMissing: true)
        var regions = try RegionChecks.check(config: config, target: target, passfile: passfile,
                                             force: options.forceOtherRegions, command: options.command)
        if let dbUpgrade { regions.warnings.append(dbUpgrade) }
        let bin = target.binDir ?? "/usr/lib/postgresql/\(db.serverVersionNum / 10000)/bin"
        let psql = bin + "/psql"
        guard FileManager.default.isExecutableFile(atPath: psql) else {
            throw BackupError.unavailable("\(psql) is missing", hint: PostgresAdapter.clientPackageHint(major: db.serverVersionNum / 10000))
        }

        let stamp = ArchiveName.timestamp(Date())
        let dbPlan = try await DatabaseSwap.preflight(target: target, manifest: manifest, psql: psql, stamp: stamp,
                                                      passfile: passfile)
        var swaps: [TreeSwap] = []
        for p in manifest.paths {
            let s = try TreeSwap.plan(path: p.path, config: config, manifest: manifest, stamp: stamp)
            try s.checkSpace()
            swaps.append(s)
        }
        let active = try await services.activeUnits(config.services)
        let plan = RestorePlan(
            archive: path, createdAt: manifest.createdAt, reason: manifest.reason, backupHost: manifest.host,
            backupMaasVersion: manifest.maasVersion, installedMaasVersion: installedVersion, versionCheck: versionCheck,
            database: target.display, databases: manifest.database.databases,
            paths: swaps.map { .init(path: $0.path, live: $0.live, mode: $0.mode.rawValue, aside: $0.aside,
                                     carriedOver: $0.keep + $0.leftInPlace.filter { $0 != TreeSwap.snapshotFolder && $0 != "lost+found" }, bytes: $0.restoreBytes) },
            servicesToStop: active, dbUpgrade: dbUpgrade, otherRegions: regions.otherRegions, warnings: regions.warnings,
            databaseRestore: dbPlan)
        return Prepared(source: source, path: path, manifest: manifest, verify: report, plan: plan, swaps: swaps, target: target, psql: psql,
                        database: dbPlan)
    }

    public func dryRun(archive: String) async throws -> RestorePlan {
        try await prepare(archive: archive).plan
    }

    public func run(archive: String) async throws -> RestoreResult {
        let clock = Stopwatch()
        let prepared = try await prepare(archive: archive)
        if let confirm = options.confirm, await !confirm(prepared.plan) {
            throw BackupError.failed("\(options.command) cancelled; nothing was changed")
        }
        let lock = try RunLock(path: config.lockFile, timeout: options.lockTimeout)
        defer { lock.release() }
        let runID = ArchiveName.timestamp(Date()) + "-\(getpid())"
        let journal = try RestoreJournal(stateDir: config.stateDir, runID: runID, command: options.command, archive: prepared.path)
        let run = RestoreRun(pipeline: self, prepared: prepared, journal: journal)
        do {
            var result = try await run.execute()
            result.durationMs = clock.elapsedMs.ms2
            result.warnings = prepared.plan.warnings + result.warnings
            journal.close()
            return result
        } catch {
            let message = await run.recoverAfterFailure(error)
            throw message
        }
    }
}

/// Thrown by the package step of a rollback: the database and files stay restored.
package struct PackageStepError: Error {
    package var message: String
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
    /// untouched, loading, loaded, checked, swapping, swapped, restored (see RestoreRecord.database)
    package var database = "untouched"
    package var dbNames: [DatabaseNames] = []
    package var step = "prepare"
    package var privateDir: PrivateDir?
    package var filesFinal = false

    package init(pipeline: RestorePipeline, prepared: RestorePipeline.Prepared, journal: RestoreJournal) {
        self.pipeline = pipeline
        self.p = prepared
        self.journal = journal
        self.swaps = prepared.swaps
    }

    package func log(_ s: String) { pipeline.log(s) }

    package func record() throws {
        let s = swaps, d = database, st = step, ff = filesFinal, names = dbNames
        try journal.update { $0.swaps = s; $0.database = d; $0.phase = st; $0.filesFinal = ff; $0.databases = names }
    }

    package func execute() async throws -> RestoreResult {
        let manifest = p.manifest
        var warnings: [String] = []
        let dir = try PrivateDir.makeTemporary()
        privateDir = dir
        defer { dir.remove(); privateDir = nil }
        try journal.update { $0.privateDir = dir.path }
        // The live, new, previous and failed names of each database: libpq checks and swaps them all.
        let passfile = try p.target.writePassfile(in: dir.path, databases: manifest.database.databases + p.database.databases.flatMap(\.all))

        // ---- Stop MAAS (PostgreSQL stays up) ----
        step = "stop services"
        let toStop = try await services.activeUnits(config.services)
        try journal.update { $0.stoppedServices = toStop; $0.phase = "stop services" }
        stopped = toStop
        servicesDown = true
        log("stopping \(toStop.isEmpty ? "nothing (no MAAS service is active)" : toStop.joined(separator: " "))")
        try await services.stop(toStop)
        try FaultPoint.hit("restore-stop")
        try Interruption.check()

        // ---- The database: loaded into new databases, checked, then swapped in by name ----
        // The live databases are not touched until the swap; they are kept under <name>_pre_restore_<time>.
        step = "database"
        dbNames = p.database.databases
        let target = p.target
        let all = dbNames.map(\.name)
        let names = Dictionary(uniqueKeysWithValues: dbNames.map { ($0.name, $0.restoring) })
        let psqlUser = p.database.psqlRunsAs
        let psqlDir = try DatabaseSwap.psqlFolder(for: psqlUser, in: dir)
        defer { psqlDir.remove() }
        let psqlPassfile = try DatabaseSwap.passfile(target, in: psqlDir, for: psqlUser, names: dbNames)
        database = "loading"
        try record()
        log("loading dump.sql (\(manifest.dump.size) bytes) into \(names.values.sorted().joined(separator: ", ")) with psql as \(psqlUser)")
        let loadPlan = DumpLoader.Plan(
            psql: p.psql, osUser: psqlUser, environment: target.environment(passfile: psqlPassfile), names: names,
            maintenanceDatabase: DatabaseSwap.maintenanceDatabase(avoiding: all),
            create: { spec, copy in
                try DatabaseSwap.create(spec, as: copy, target: target, passfile: passfile, avoiding: all)
                self.log("created the database \(copy) for \(spec.name)")
                try FaultPoint.hit("restore-db-create")
            })
        let outcome = try await DumpLoader.load(archive: p.source.readPath, plan: loadPlan, errorLog: dir.path + "/psql.log")
        if outcome.failed {
            let n = outcome.errors.count
            throw BackupError.failed("psql failed to load dump.sql: \(outcome.firstProblem)" + (n > 1 ? " (\(n) errors)" : ""))
        }
        if let first = outcome.refused.first {
            warnings.append("\(outcome.refused.count) role statement(s) of dump.sql were refused for lack of privilege, so the roles were left as they are (first: \(first))")
        }
        database = "loaded"
        try record()
        try FaultPoint.hit("restore-db-load")
        let check = try DatabaseCheck.compare(manifest: manifest, target: target, passfile: passfile, names: names)
        if let first = check.problems.first {
            throw BackupError.failed("the restored database does not match the backup: \(first)"
                                     + (check.problems.count > 1 ? " (and \(check.problems.count - 1) more)" : ""))
        }
        warnings += check.warnings
        database = "checked"
        try record()
        try FaultPoint.hit("restore-db-check")
        try Interruption.check()
        database = "swapping"
        try record()
        dbNames = try DatabaseSwap.swapIn(dbNames, target: target, passfile: passfile, log: { self.log($0) })
        database = "swapped"
        try record()
        try FaultPoint.hit("restore-database")
        log("database restored: \(check.tables) tables, \(check.rows) rows, schema head \(DatabaseCheck.describe(check.schemaHead))"
            + (dbNames.contains(where: \.existed) ? "; the previous one is kept as \(dbNames.filter(\.existed).map(\.previous).joined(separator: ", "))" : ""))
        try Interruption.check()

        // ---- The files ----
        step = "files"
        let secretPath = config.live("/var/lib/maas/secret")
        let oldSecret = readSecret(secretPath)
        for i in swaps.indices {
            var swap = swaps[i]
            defer { swaps[i] = swap }
            try swap.moveAside { s in self.swaps[i] = s; try self.record() }
            if swap.mode != .create { log("moved the previous \(swap.live) aside to \(swap.aside)") }
        }
        try FaultPoint.hit("restore-aside")
        let members = swaps.map(\.member)
        let root = config.root
        let count = try await Blocking.run {
            try Extractor.extract(archive: self.p.source.readPath, root: root, members: members, checkInterrupted: { try Interruption.check() })
        }
        log("extracted \(count) files and folders")
        try FaultPoint.hit("restore-extract")
        for i in swaps.indices {
            var swap = swaps[i]
            defer { swaps[i] = swap }
            try swap.carryKept(record: { s in self.swaps[i] = s; try self.record() }, log: { self.log($0) })
        }
        try FaultPoint.hit("restore-keep")
        try Interruption.check()

        // ---- Packages (rollback) ----
        var packages: [String: String]?
        if let stepFn = pipeline.options.packageStep {
            step = "packages"
            filesFinal = true
            try record()
            do {
                packages = try await stepFn(manifest)
            } catch {
                throw PackageStepError(message: "\(error)")
            }
        }

        // ---- maas-region dbupgrade: the installed MAAS differs from the backup's by a patch version ----
        if p.plan.dbUpgrade != nil { step = "dbupgrade"; try await RegionChecks.dbUpgrade(log: { self.log($0) }) }

        // ---- Start and check ----
        step = "start services"
        try await startServices()
        try FaultPoint.hit("restore-start")
        let notActive = try await waitActive(stopped)
        if !notActive.isEmpty {
            throw BackupError.failed("\(notActive.joined(separator: " ")) did not become active after the restore",
                                     hint: "see journalctl -u \(notActive[0])")
        }
        let head = try DatabaseCheck.schemaHead(target: p.target, database: manifest.database.maasDatabase, passfile: passfile)
        if head != manifest.database.schemaHead {
            throw BackupError.failed("after the start the schema head is \(DatabaseCheck.describe(head)), not the backup's \(DatabaseCheck.describe(manifest.database.schemaHead))")
        }
        filesFinal = true
        step = "done"
        database = "restored"
        try record()

        // Rack controllers register with the region's secret; a different one means registering again.
        var rack: String?
        let newSecret = readSecret(secretPath)
        if let newSecret, newSecret != oldSecret {
            let url = maasURL() ?? "http://<region>:5240/MAAS"
            rack = "maas-rack register --url \(url) --secret \(newSecret)"
        }
        let previous = swaps.filter { $0.mode != .create }.map(\.aside)
        let previousDBs = dbNames.filter(\.existed).map(\.previous)
        return RestoreResult(status: "ok", archive: p.path, plan: p.plan, verify: p.verify, database: check,
                             expectedPsqlErrors: outcome.expected.count, previousFiles: previous,
                             previousDatabases: previousDBs, dropPreviousDatabases: previousDBs.map { DatabaseSwap.dropCommand($0, target: target) },
                             servicesStarted: stopped,
                             rackRegisterCommand: rack, packages: packages, warnings: warnings, durationMs: 0)
    }

    package func startServices() async throws {
        guard servicesDown else { return }
        try await services.start(Array(stopped.reversed()))
        servicesDown = false
        try? journal.update { $0.servicesRestarted = true }
    }

    /// Units of `units` still not active after a few seconds.
    package func waitActive(_ units: [String]) async throws -> [String] {
        guard !units.isEmpty else { return [] }
        var missing: [String] = []
        for _ in 0..<20 {
            let active = try await services.activeUnits(units)
            missing = units.filter { !active.contains($0) }
            if missing.isEmpty { return [] }
            try await Task.sleep(nanoseconds: 500_000_000)
        }
        return missing
    }

    package func readSecret(_ path: String) -> String? {
        guard let s = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        let t = s.trimmingCharacters(in: .whitespacesAndNewlines)
        return t.isEmpty ? nil : t
    }

    /// maas_url from the restored regiond.conf, else rackd.conf.
    package func maasURL() -> String? {
        for f in ["/etc/maas/regiond.conf", "/etc/maas/rackd.conf"] {
            guard let text = try? String(contentsOfFile: config.live(f), encoding: .utf8),
                  let node = try? SafeYAML.compose(text, source: f), case .mapping(let m) = node else { continue }
            for (k, v) in m where k.string == "maas_url" {
                if let s = v.string, !s.isEmpty { return s }
                if case .sequence(let seq) = v, let first = seq.first?.string { return first }
            }
        }
        return nil
    }

    /// After a failure: the previous files back, the services started, and one message that says
    /// what state everything is in.
    package func recoverAfterFailure(_ error: any Error) async -> BackupError {
        let cause: String
        var code = ExitCode.failed
        if let e = error as? BackupError {
            cause = e.description
            if e.code == .locked { code = .locked }
        } else if let e = error as? PackageStepError {
            cause = e.message
        } else {
            cause = "\(error)"
        }
        var notes: [String] = []
        var undoFailed = false
        if error is PackageStepError {
            notes.append("the database and the files are restored from the backup, but the MAAS packages were not reinstalled")
        } else if !filesFinal && swaps.contains(where: { $0.asideDone }) {
            // MAAS must not run while its files are swapped back.
            if !servicesDown && !stopped.isEmpty {
                do { try await services.stop(stopped); servicesDown = true } catch { log("warning: cannot stop \(stopped.joined(separator: " ")): \(error)") }
            }
            for i in swaps.indices.reversed() {
                do {
                    var swap = swaps[i]
                    defer { swaps[i] = swap }
                    try swap.undo { s in self.swaps[i] = s; try? self.record() }
                } catch {
                    undoFailed = true
                    notes.append("CRITICAL: could not put \(swaps[i].live) back (\(error)); the previous files are in \(swaps[i].aside)")
                }
            }
            if !undoFailed { notes.append("the previous files were put back") }
        } else if !filesFinal {
            notes.append("the files were not changed")
        }
        // The database: the live names hold the previous databases again, unless the restore's files stay.
        let keepDatabase = error is PackageStepError || filesFinal
        if !keepDatabase && (database == "swapped" || database == "swapping" || database == "restored")
            && !servicesDown && !stopped.isEmpty {
            do { try await services.stop(stopped); servicesDown = true } catch { log("warning: cannot stop \(stopped.joined(separator: " ")): \(error)") }
        }
        let db = DatabaseUndo.run(state: database, names: dbNames, keep: keepDatabase, target: p.target, command: pipeline.options.command,
                                  log: { self.log($0) })
        notes.append(db.note)
        if db.failed { undoFailed = true } else if !keepDatabase && database != "untouched" { database = "untouched"; try? record() }
        var servicesOK = true
        if servicesDown {
            do { try await startServices() } catch {
                do { try await startServices() } catch {
                    servicesOK = false
                    notes.append("CRITICAL: could not start \(stopped.joined(separator: " ")): \(error); start them by hand")
                }
            }
        }
        if servicesOK && !stopped.isEmpty { notes.append("services started again") }
        if !undoFailed && servicesOK { journal.close() } else {
            notes.append("`maas-snapshot-backup recover` retries what is left (journal \(journal.path))")
        }
        return BackupError(code, "\(pipeline.options.command) failed at step '\(step)': \(cause); " + notes.joined(separator: "; "))
    }
}
