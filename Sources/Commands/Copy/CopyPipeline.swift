import Foundation
import MSBKit
import MSBArchive
import MSBBackupSet
import MSBRemote
#if canImport(Glibc)
import Glibc
#endif

/// One archive sent to the repository.
public struct CopiedArchive: Sendable, Codable {
    public var archive: String
    public var snapshotId: String
    public var tags: [String]
    public var compressedBytes: Int64
    public var uncompressedBytes: Int64
    public var durationMs: Double
}

/// What `copy` (or the copy after a backup) did; `--json` prints it, BackupResult holds it.
public struct CopyReport: Sendable, Codable {
    /// ok, failed, scheduled (a pre-upgrade backup's copy runs detached), or nothing (no archive).
    public var status: String
    public var repository: String
    public var copied: [CopiedArchive] = []
    /// Requested archives that were in the repository already.
    public var alreadyCopied: [String] = []
    /// The archive whose copy failed, and the one-line error.
    public var failedArchive: String?
    public var error: String?
    public var exitCode: Int32?
    /// A scheduled copy: the systemd unit or the detached process that runs it.
    public var scheduledAs: String?
    public var durationMs: Double = 0

    public init(status: String, repository: String) {
        self.status = status
        self.repository = repository
    }
}

/// `copy [ARCHIVE]` and the copy after a backup (README "Off-host copies"): the archive (default:
/// the newest complete local one) goes to the restic repository as its uncompressed tar stream.
/// Local archives missing from the repository (by their `archive=NAME` tag) whose copy failed
/// before, or that are newer than the newest copy there, are copied too (oldest first), so a
/// failed copy is retried by the next run. Copies never overlap (their own lock beside the run lock).
public struct CopyPipeline: Sendable {
    public let config: Config
    public var lockTimeout: Double
    public var log: LogSink?

    public init(config: Config, lockTimeout: Double = 600, log: LogSink? = nil) {
        self.config = config
        self.lockTimeout = lockTimeout
        self.log = log
    }

    /// The `remote:` section, or a config error saying how to add one.
    public static func remote(_ config: Config) throws -> RemoteConfig {
        guard let r = config.remote else {
            throw BackupError.config("no remote: section in the config: there is no repository to copy to",
                                     hint: "add remote.repository and remote.password_file (README \"Off-host copies\")")
        }
        return r
    }

    /// The repository of `remote:` (checks the password and env files, finds restic).
    public static func repository(_ config: Config) throws -> ResticRepository {
        try ResticRepository(try remote(config).settings(stateDir: config.stateDir))
    }

    public static func hostName() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, buf.count)
        let h = String(cString: buf)
        return h.isEmpty ? "localhost" : h
    }

    /// NAME of NAME.tar.gz.
    static func baseName(_ path: String) -> String {
        let b = (path as NSString).lastPathComponent
        return b.hasSuffix(ArchiveName.suffix) ? String(b.dropLast(ArchiveName.suffix.count)) : b
    }

    typealias Target = CopyQueue.Target

    var copyLock: String { ((config.lockFile as NSString).deletingLastPathComponent) + "/copy.lock" }

    /// Copies; a failure is recorded (state file, metrics) and thrown as one line.
    public func copy(archive: String? = nil) async throws -> CopyReport {
        let clock = Stopwatch()
        let remote = try CopyPipeline.remote(config)
        var report = CopyReport(status: "ok", repository: ResticErrorReporter.maskURLPassword(remote.repository))
        var state = CopyState.load(stateDir: config.stateDir)
        var todo: [Target] = []
        // Named from the start: a failure before the archive is found (a missing password file) names it too.
        var wanted: String? = archive.map(CopyPipeline.baseName)
        var current = wanted
        do {
            let repo = try CopyPipeline.repository(config)
            report.repository = repo.displayName
            let lock = try RunLock(path: copyLock, timeout: lockTimeout)
            defer { lock.release() }
            let entries = Catalog.entries(destination: config.destination).filter(\.hasManifest)
                .map { Target(archive: $0.archive, reason: $0.reason, maasVersion: $0.maasVersion, time: $0.time) }
            guard let chosen = try chooseTarget(archive, entries: entries) else {
                report.status = "nothing"
                log?(.info, "no complete backup in \(config.destination): nothing to copy")
                return report
            }
            wanted = CopyPipeline.baseName(chosen.archive)
            current = wanted
            let plan = CopyQueue.plan(entries: entries, chosen: chosen, snapshots: try await repo.snapshots(tags: [ResticCopier.toolTag]), state: state)
            todo = plan.todo
            if let done = plan.alreadyCopied { report.alreadyCopied.append(done) }
            current = nil
            let copier = ResticCopier(repository: repo)
            let host = CopyPipeline.hostName()
            while let e = todo.first {
                current = CopyPipeline.baseName(e.archive)
                try await copyOne(e, name: current!, plan: plan, repo: repo, copier: copier, host: host, state: &state, report: &report)
                todo.removeFirst()
                current = nil
            }
        } catch {
            throw recordFailure(error, current: current, wanted: wanted, todo: todo, state: &state, report: &report, clock: clock)
        }
        recordSuccess(state: &state, report: &report, clock: clock)
        return report
    }

    /// The archive to copy: the one named (a path, or a name in the destination; one the catalog
    /// does not list is read from its sidecar), else the newest complete backup; nil when there is none.
    func chooseTarget(_ archive: String?, entries: [Target]) throws -> Target? {
        guard let archive else { return entries.first }
        let path = archive.contains("/") ? archive : config.destination + "/" + archive
        _ = try ResticCopier.name(ofArchive: path)
        if let e = entries.first(where: { $0.archive == path }) { return e }
        guard FileManager.default.fileExists(atPath: path) else {
            throw BackupError(.usage, "the archive \(archive) does not exist", hint: "run `maas-snapshot-backup list` to see the backups")
        }
        let m = FileManager.default.contents(atPath: BackupFiles(archive: path).sidecar).flatMap { try? Manifest.decode(Array($0)) }
        return Target(archive: path, reason: m?.reason ?? "manual", maasVersion: m?.maasVersion, time: Date().timeIntervalSince1970)
    }

    /// Copies one archive (`name` its base name): pending in the state until restic has finished,
    /// then recorded with its snapshot; the unfinished copies of it this host left are forgotten.
    func copyOne(_ e: Target, name: String, plan: CopyQueue.Plan, repo: any RemoteRepository, copier: ResticCopier, host: String,
                 state: inout CopyState, report: inout CopyReport) async throws {
        // Pending until restic has finished: a run killed now leaves it to be copied again.
        if !state.pending.contains(name) {
            state.pending.append(name)
            try? state.save(stateDir: config.stateDir)
        }
        log?(.info, "copying \(name) to \(repo.displayName)")
        let c = try await copier.copy(archive: e.archive, kind: ResticCopier.Kind(BackupReason(recorded: e.reason.lowercased())),
                                      maasVersion: e.maasVersion, host: host)
        state.copied[name] = c.snapshotID
        state.pending.removeAll { $0 == name }
        try? state.save(stateDir: config.stateDir)
        // Snapshots of it that never counted (a cut-off copy's part of the tar) go, so that
        // `restore --from-remote` never picks one; `prune` frees their data.
        let stale = (plan.byArchive[name] ?? []).filter { !plan.present.contains(name) && $0.hostname == host && !$0.id.hasPrefix(c.snapshotID) }
        if !stale.isEmpty {
            do {
                try await repo.forget(snapshotIDs: stale.map(\.id))
                log?(.info, "forgot \(stale.count) unfinished copy(ies) of \(name): \(stale.map(\.shortID).joined(separator: " "))")
            } catch {
                log?(.warning, "warning: cannot forget the unfinished copies of \(name) (\(stale.map(\.shortID).joined(separator: " "))): \(error)")
            }
        }
        report.copied.append(.init(archive: name, snapshotId: c.snapshotID, tags: c.tags, compressedBytes: c.compressedBytes,
                                   uncompressedBytes: c.uncompressedBytes, durationMs: c.durationMs))
        log?(.info, String(format: "copied %@ as snapshot %@: %lld bytes of tar in %.1f s", name, c.snapshotID, c.uncompressedBytes, c.durationMs / 1000))
    }

    /// A failed run: what it did not copy stays pending for the next one; recorded (state file,
    /// metrics); the error to throw.
    func recordFailure(_ error: any Error, current: String?, wanted: String?, todo: [Target],
                       state: inout CopyState, report: inout CopyReport, clock: Stopwatch) -> CopyFailure {
        let e = error as? BackupError ?? BackupError.failed("\(error)")
        report.status = "failed"
        report.failedArchive = current
        report.error = "copy\(current.map { " of " + $0 } ?? "") failed: \(e.description)"
        report.exitCode = e.code.rawValue
        report.durationMs = clock.elapsedMs.ms2
        var names = todo.map { CopyPipeline.baseName($0.archive) }
        if let wanted, !names.contains(wanted), !report.alreadyCopied.contains(wanted), !report.copied.contains(where: { $0.archive == wanted }) {
            names.append(wanted)
        }
        state.pending = Array(Set(state.pending).union(names)).sorted()
        state.pending.removeAll { n in report.copied.contains { $0.archive == n } }
        state.last = .init(status: "failed", at: ArchiveName.iso8601(Date()), archives: current.map { [$0] } ?? names, error: report.error)
        record(state, success: false, report: report)
        return CopyFailure(report: report, error: BackupError(e.code, report.error!))
    }

    /// A run that copied everything: archives gone from the destination (pruned) leave the state.
    func recordSuccess(state: inout CopyState, report: inout CopyReport, clock: Stopwatch) {
        report.durationMs = clock.elapsedMs.ms2
        let now = ArchiveName.iso8601(Date())
        let done = Set(report.copied.map(\.archive) + report.alreadyCopied)
        // Gone from the destination (pruned): nothing left to retry.
        state.pending.removeAll { done.contains($0) || !FileManager.default.fileExists(atPath: config.destination + "/" + $0 + ArchiveName.suffix) }
        state.copied = state.copied.filter { FileManager.default.fileExists(atPath: config.destination + "/" + $0.key + ArchiveName.suffix) }
        state.last = .init(status: "ok", at: now, archives: report.copied.map(\.archive) + report.alreadyCopied)
        state.lastSuccessAt = now
        record(state, success: true, report: report)
    }

    func record(_ state: CopyState, success: Bool, report: CopyReport) {
        do { try state.save(stateDir: config.stateDir) } catch { log?(.warning, "warning: cannot write \(CopyState.path(stateDir: config.stateDir)): \(error)") }
        if let w = CopyMetrics.update(stateDir: config.stateDir, path: config.metricsTextfile, success: success, durationMs: report.durationMs,
                                      bytes: report.copied.isEmpty ? nil : report.copied.reduce(0) { $0 + $1.uncompressedBytes }) {
            log?(.warning, "warning: \(w)")
        }
    }
}

/// A failed copy: the report (for `--json` and BackupResult) and the one-line error.
public struct CopyFailure: Error, CustomStringConvertible {
    public var report: CopyReport
    public var error: BackupError
    public var description: String { error.description }
}

extension ResticCopier.Kind {
    /// The repository's tag for a backup's reason: the daily unit's `scheduled` is `timer`.
    package init(_ reason: BackupReason) {
        switch reason {
        case .manual: self = .manual
        case .scheduled: self = .timer
        case .preUpgrade: self = .preUpgrade
        }
    }
}
