import Foundation
import MSBKit
import MSBBackup
import MSBRestore
import MSBSnapshot
import MSBServices
import MSBDatabase
import MSBBackupSet
#if canImport(Glibc)
import Glibc
#endif

/// `recover`: undoes what killed runs left behind, from their journals, and nothing else.
/// - backup: thaws the services it froze and starts the ones it stopped (unless it did), removes its snapshots through
///   their drivers, its private folder and its partial archive, then the journal;
/// - restore/rollback: stops the services it had started again, puts the previous files back (unless
///   the restored files were final), puts the databases back as the journal recorded them (drops the
///   new copies before the swap; swaps the names back after it, unless the files were final), starts
///   the services it stopped, then the journal.
public struct RecoverReport: Sendable, Codable {
    public struct Item: Sendable, Codable {
        public var journal: String
        public var command: String
        public var runID: String
        public var actions: [String]
        public var errors: [String]
        public var done: Bool
    }
    public var items: [Item]
    public var status: String
}

public enum Recovery {
    public static func run(config: Config, services given: (any ServiceManager)? = nil, lockTimeout: Double = 30) async throws -> RecoverReport {
        try Privilege.requireRoot("recover")
        let lock = try RunLock(path: config.lockFile, timeout: lockTimeout)
        defer { lock.release() }
        var items: [RecoverReport.Item] = []
        let backups = RunJournal.leftovers(stateDir: config.stateDir)
        let restores = RestoreJournal.leftovers(stateDir: config.stateDir)
        if backups.isEmpty && restores.isEmpty { return RecoverReport(items: [], status: "nothing to do") }
        let services = try given ?? Systemctl()
        for j in backups { items.append(await recoverBackup(j, config: config, services: services)) }
        for j in restores { items.append(await recoverRestore(j, config: config, services: services)) }
        return RecoverReport(items: items, status: items.allSatisfy(\.done) ? "ok" : "incomplete")
    }

    static package func recoverBackup(_ j: RunJournal, config: Config, services: any ServiceManager) async -> RecoverReport.Item {
        let r = j.record
        var actions: [String] = [], errors: [String] = []
        // The killed run's systemd-run guard timer, still armed, must not start or thaw anything later.
        await DeadManGuard.cancelTimer(runID: r.runID)
        let frozen = r.frozenServices ?? []
        if !r.servicesRestarted && !frozen.isEmpty {
            // Thawed even when the guard already did: a thaw of a running unit is harmless.
            do {
                try await services.thaw(frozen)
                if r.stoppedServices.isEmpty { try? j.update { $0.servicesRestarted = true } }
                actions.append("thawed \(frozen.joined(separator: " "))")
            } catch { errors.append("cannot thaw \(frozen.joined(separator: " ")): \(error)") }
        }
        if !r.servicesRestarted && !r.stoppedServices.isEmpty {
            let s = await RestoreUndo.startUnits(r.stoppedServices, services: services, timeout: config.startTimeout)
            actions += s.actions; errors += s.errors
            if s.errors.isEmpty { try? j.update { $0.servicesRestarted = true } }
        }
        let drivers = SnapshotDrivers.all(config)
        for s in r.snapshots.reversed() {
            guard let d = drivers.first(where: { $0.method == s.volume.method }) else { continue }
            do {
                try d.remove(s)
                actions.append("removed the snapshot \(s.identity) (if it existed)")
            } catch { errors.append("cannot remove the snapshot \(s.identity): \(error)") }
        }
        // Only what the run made: its private folder (.msb-<run id>) and its .partial archive.
        if let dir = r.privateDir {
            let base = (dir as NSString).lastPathComponent
            if base == ".msb-\(r.runID)" || base.hasPrefix("msb-") {
                var st = stat()
                if lstat(dir, &st) == 0 {
                    do { try TreeRemover.remove(dir); actions.append("removed \(dir)") } catch {
                        errors.append("cannot remove \(dir): \(error)")
                    }
                }
            } else {
                errors.append("left \(dir) alone: it does not look like a folder this tool made")
            }
        }
        if let part = r.partialArchive {
            let base = (part as NSString).lastPathComponent
            if BackupFiles.isPartial(base) {
                if unlink(part) == 0 { actions.append("removed \(part)") } else if errno != ENOENT {
                    errors.append("cannot remove \(part): \(Errno.last.description)")
                }
            } else {
                errors.append("left \(part) alone: it is not a partial archive name")
            }
        }
        if errors.isEmpty { j.close(); actions.append("removed the journal") }
        return .init(journal: j.path, command: r.command, runID: r.runID, actions: actions, errors: errors, done: errors.isEmpty)
    }

    static package func recoverRestore(_ j: RestoreJournal, config: Config, services: any ServiceManager) async -> RecoverReport.Item {
        // The same undo engine as the failing run's own (RestoreUndo), on the journal's state.
        var undo = RestoreUndo(record: j.record, services: services, startTimeout: config.startTimeout,
                               target: { [r = j.record] in try PostgresTarget.resolveForRestore(config, fallbackDatabase: r.databases?.first?.name) },
                               save: { r in try? j.update { $0 = r } }, log: { _ in })
        let outcome = await undo.run()
        let r = undo.record
        var actions = outcome.details + outcome.actions, errors = outcome.errors
        if let i = actions.firstIndex(of: "the database was not changed") { actions[i] = "the database was not changed by that \(r.command)" }
        if let dir = r.privateDir, (dir as NSString).lastPathComponent.hasPrefix("msb-") {
            var st = stat()
            if lstat(dir, &st) == 0 {
                do { try TreeRemover.remove(dir); actions.append("removed \(dir)") } catch {
                    errors.append("cannot remove \(dir): \(error)")
                }
            }
        }
        try? j.update { $0 = r }
        if errors.isEmpty { j.close(); actions.append("removed the journal") }
        return .init(journal: j.path, command: r.command, runID: r.runID, actions: actions, errors: errors, done: errors.isEmpty)
    }
}
