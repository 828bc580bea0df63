import Foundation
import LibPQ
import Yams
#if canImport(Glibc)
import Glibc
#endif

/// Options of `restore` (and of `rollback`, which restores and then reinstalls packages).
public struct RestoreOptions: Sendable {
    /// Restore over an installed MAAS of another major.minor version.
    public var force = false
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
    let services: any ServiceManager

    public init(config: Config, options: RestoreOptions, services: (any ServiceManager)? = nil) throws {
        self.config = config
        self.options = options
        self.services = try services ?? Systemctl()
    }

    func log(_ s: String) { options.log?(s) }

    static func faultPoint(_ step: String) throws { try BackupPipeline.faultPoint(step) }

    /// Everything restore decides before it changes anything (rollback --dry-run prints it).
    struct Prepared {
        var path: String
        var manifest: Manifest
        var verify: VerifyReport
        var plan: RestorePlan
        var swaps: [TreeSwap]
        var target: PostgresTarget
        var psql: String
    }

    func prepare(archive: String) async throws -> Prepared {
        guard geteuid() == 0 else {
            throw BackupError(.noPermission, "\(options.command) must run as root", hint: "run it with sudo")
        }
        let path = try ArchiveVerifier.resolve(archive, config: config)
        log("verifying \(path)")
        let (manifest, report): (Manifest, VerifyReport)
        do {
            (manifest, report) = try await ArchiveVerifier.verify(archive: path, checkInterrupted: { try Interruption.check() })
        } catch let e as BackupError where e.code == .dataError {
            VerifiedStamp.remove(archive: path)
            throw BackupError.data("refusing to \(options.command): \(e.message)", hint: "nothing was changed; " + (e.hint ?? "use another backup"))
        }
        VerifiedStamp.write(archive: path, sha256: report.sha256, deep: false)
        try Self.faultPoint("restore-verify")

        // Version guard: the archive's MAAS major.minor against the installed one.
        let installed = await InstalledPackages.installed(root: config.root)
        let installedVersion = installed["maas-region-controller"] ?? installed["maas"] ?? installed["maas-rack-controller"]
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

        try await options.preflight?(manifest)

        let target = try PostgresTarget.resolve(config)
        let tmp = try PrivateDir.makeTemporary()
        defer { tmp.remove() }
        let db = try PostgresAdapter(target: target).preflight(passfile: try target.writePassfile(in: tmp.path))
        let bin = target.binDir ?? "/usr/lib/postgresql/\(db.serverVersionNum / 10000)/bin"
        let psql = bin + "/psql"
        guard FileManager.default.isExecutableFile(atPath: psql) else {
            throw BackupError.unavailable("\(psql) is missing", hint: "apt-get install postgresql-client-\(db.serverVersionNum / 10000), or set database.bin_dir")
        }

        let stamp = ArchiveName.timestamp(Date())
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
            servicesToStop: active)
        return Prepared(path: path, manifest: manifest, verify: report, plan: plan, swaps: swaps, target: target, psql: psql)
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
            journal.close()
            return result
        } catch {
            let message = await run.recoverAfterFailure(error)
            throw message
        }
    }
}

/// Thrown by the package step of a rollback: the database and files stay restored.
struct PackageStepError: Error {
    var message: String
}

/// One restore after its plan: everything it changed, so that a failure can be undone.
final class RestoreRun {
    let pipeline: RestorePipeline
    let p: RestorePipeline.Prepared
    let journal: RestoreJournal
    var config: Config { pipeline.config }
    var services: any ServiceManager { pipeline.services }

    var swaps: [TreeSwap]
    var stopped: [String] = []
    var servicesDown = false
    /// untouched, loading, loaded, restored
    var database = "untouched"
    var step = "prepare"
    var privateDir: PrivateDir?
    var filesFinal = false

    init(pipeline: RestorePipeline, prepared: RestorePipeline.Prepared, journal: RestoreJournal) {
        self.pipeline = pipeline
        self.p = prepared
        self.journal = journal
        self.swaps = prepared.swaps
    }

    func log(_ s: String) { pipeline.log(s) }

    func record() throws {
        let s = swaps, d = database, st = step, ff = filesFinal
        try journal.update { $0.swaps = s; $0.database = d; $0.phase = st; $0.filesFinal = ff }
    }

    func execute() async throws -> RestoreResult {
        let manifest = p.manifest
        var warnings: [String] = []
        let dir = try PrivateDir.makeTemporary()
        privateDir = dir
        defer { dir.remove(); privateDir = nil }
        try journal.update { $0.privateDir = dir.path }
        let passfile = try p.target.writePassfile(in: dir.path, databases: manifest.database.databases)

        // ---- Stop MAAS (PostgreSQL stays up) ----
        step = "stop services"
        let toStop = try await services.activeUnits(config.services)
        try journal.update { $0.stoppedServices = toStop; $0.phase = "stop services" }
        stopped = toStop
        servicesDown = true
        log("stopping \(toStop.isEmpty ? "nothing (no MAAS service is active)" : toStop.joined(separator: " "))")
        try await services.stop(toStop)
        try RestorePipeline.faultPoint("restore-stop")
        try Interruption.check()

        // ---- The database ----
        step = "database"
        try terminateSessions(passfile: passfile)
        database = "loading"
        try record()
        log("restoring the database from dump.sql (\(manifest.dump.size) bytes) with psql")
        let outcome = try await DumpLoader.load(archive: p.path, psql: p.psql, database: "postgres",
                                                environment: p.target.environment(passfile: passfile),
                                                asUser: p.target.osUser?.name, errorLog: dir.path + "/psql.log")
        if outcome.failed {
            let n = outcome.errors.count
            throw BackupError.failed("psql failed to restore dump.sql: \(outcome.firstProblem)" + (n > 1 ? " (\(n) errors)" : ""))
        }
        database = "loaded"
        try record()
        let check = try DatabaseCheck.compare(manifest: manifest, target: p.target, passfile: passfile)
        if let first = check.problems.first {
            throw BackupError.failed("the restored database does not match the backup: \(first)"
                                     + (check.problems.count > 1 ? " (and \(check.problems.count - 1) more)" : ""))
        }
        warnings += check.warnings
        database = "restored"
        try record()
        try RestorePipeline.faultPoint("restore-database")
        log("database restored: \(check.tables) tables, \(check.rows) rows, schema head \(DatabaseCheck.describe(check.schemaHead))")
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
        try RestorePipeline.faultPoint("restore-aside")
        let members = swaps.map(\.member)
        let root = config.root
        let count = try await Blocking.run {
            try Extractor.extract(archive: self.p.path, root: root, members: members, checkInterrupted: { try Interruption.check() })
        }
        log("extracted \(count) files and folders")
        try RestorePipeline.faultPoint("restore-extract")
        for i in swaps.indices {
            var swap = swaps[i]
            defer { swaps[i] = swap }
            try swap.carryKept(record: { s in self.swaps[i] = s; try self.record() }, log: { self.log($0) })
        }
        try RestorePipeline.faultPoint("restore-keep")
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

        // ---- Start and check ----
        step = "start services"
        try await startServices()
        try RestorePipeline.faultPoint("restore-start")
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
        try record()

        // Rack controllers register with the region's secret; a different one means registering again.
        var rack: String?
        let newSecret = readSecret(secretPath)
        if let newSecret, newSecret != oldSecret {
            let url = maasURL() ?? "http://<region>:5240/MAAS"
            rack = "maas-rack register --url \(url) --secret \(newSecret)"
        }
        let previous = swaps.filter { $0.mode != .create }.map(\.aside)
        return RestoreResult(status: "ok", archive: p.path, plan: p.plan, verify: p.verify, database: check,
                             expectedPsqlErrors: outcome.expected.count, previousFiles: previous, servicesStarted: stopped,
                             rackRegisterCommand: rack, packages: packages, warnings: warnings, durationMs: 0)
    }

    func startServices() async throws {
        guard servicesDown else { return }
        try await services.start(Array(stopped.reversed()))
        servicesDown = false
        try? journal.update { $0.servicesRestarted = true }
    }

    /// Units of `units` still not active after a few seconds.
    func waitActive(_ units: [String]) async throws -> [String] {
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

    /// Ends other sessions on the databases about to be dropped (DROP DATABASE refuses while they last).
    func terminateSessions(passfile: String?) throws {
        let c = try p.target.connect(database: "postgres", passfile: passfile)
        defer { c.finish() }
        for db in p.manifest.database.databases where db != "postgres" {
            do {
                let r = try c.exec("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", [db])
                if let n = r.scalar, n != "0" { log("ended \(n) session(s) on \(db)") }
            } catch let e as PQError {
                throw BackupError.failed("cannot end the other sessions on \(db): \(e.message)")
            }
        }
    }

    func readSecret(_ path: String) -> String? {
        guard let s = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        let t = s.trimmingCharacters(in: .whitespacesAndNewlines)
        return t.isEmpty ? nil : t
    }

    /// maas_url from the restored regiond.conf, else rackd.conf.
    func maasURL() -> String? {
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
    func recoverAfterFailure(_ error: any Error) async -> BackupError {
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
        switch database {
        case "untouched": notes.append("the database was not changed")
        case "loading": notes.append("the database restore failed part-way: the MAAS database may be missing or incomplete; fix the cause and run \(pipeline.options.command) again")
        case "loaded": notes.append("the database was loaded from the backup but does not match it; run \(pipeline.options.command) again")
        default: notes.append("the database holds the backup's data")
        }
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
