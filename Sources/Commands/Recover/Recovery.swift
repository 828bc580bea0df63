import Foundation
import MSBKit
import MSBBackup
import MSBRestore
import MSBSnapshot
import MSBServices
import MSBDatabase
import MSBExpire
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
            let s = await startUnits(r.stoppedServices, services: services, timeout: config.startTimeout)
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
                    do { try FileManager.default.removeItem(atPath: dir); actions.append("removed \(dir)") } catch {
                        errors.append("cannot remove \(dir): \(error)")
                    }
                }
            } else {
                errors.append("left \(dir) alone: it does not look like a folder this tool made")
            }
        }
        if let part = r.partialArchive {
            let base = (part as NSString).lastPathComponent
            if base.hasPrefix("maas-backup-") && base.hasSuffix(ArchiveName.partialSuffix) {
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
        var r = j.record
        var actions: [String] = [], errors: [String] = []
        let dbSwapped = ["swapping", "swapped", "restored"].contains(r.database) && !(r.databases ?? []).isEmpty
        if (!r.filesFinal && r.swaps.contains(where: { $0.asideDone })) || (!r.filesFinal && dbSwapped) {
            // MAAS must not run while its files are put back.
            if r.servicesRestarted && !r.stoppedServices.isEmpty {
                do { try await services.stop(r.stoppedServices); r.servicesRestarted = false } catch {
                    errors.append("cannot stop \(r.stoppedServices.joined(separator: " ")) to put the files back: \(error)")
                }
            }
            if errors.isEmpty {
                for i in r.swaps.indices.reversed() where r.swaps[i].asideDone {
                    do {
                        var s = r.swaps[i]
                        try s.undo { x in r.swaps[i] = x; let rr = r; try? j.update { $0 = rr } }
                        r.swaps[i] = s
                        actions.append("put the previous \(s.live) back")
                    } catch {
                        errors.append("cannot put \(r.swaps[i].live) back (\(error)); the previous files are in \(r.swaps[i].aside)")
                    }
                }
            }
        }
        // The databases, while MAAS is stopped.
        if r.database == "untouched" {
            actions.append("the database was not changed by that \(r.command)")
        } else if errors.isEmpty {
            do {
                let target = try PostgresTarget.resolveForRestore(config, fallbackDatabase: r.databases?.first?.name)
                let db = DatabaseUndo.run(state: r.database, names: r.databases ?? [], keep: r.filesFinal, target: target, command: r.command,
                                          log: { actions.append($0) })
                if db.failed { errors.append(db.note) } else {
                    actions.append(db.note)
                    if !r.filesFinal && !(r.databases ?? []).isEmpty { r.database = "untouched" }
                }
            } catch { errors.append("cannot reach the database to undo it: \(error)") }
        }
        if !r.servicesRestarted && !r.stoppedServices.isEmpty {
            let s = await startUnits(r.stoppedServices, services: services, timeout: config.startTimeout)
            actions += s.actions; errors += s.errors
            r.stoppedServices = r.stoppedServices.filter { !s.gone.contains($0) }
            if s.errors.isEmpty { r.servicesRestarted = true }
        }
        if let dir = r.privateDir, (dir as NSString).lastPathComponent.hasPrefix("msb-") {
            var st = stat()
            if lstat(dir, &st) == 0 {
                do { try FileManager.default.removeItem(atPath: dir); actions.append("removed \(dir)") } catch {
                    errors.append("cannot remove \(dir): \(error)")
                }
            }
        }
        let rr = r
        try? j.update { $0 = rr }
        if errors.isEmpty { j.close(); actions.append("removed the journal") }
        return .init(journal: j.path, command: r.command, runID: r.runID, actions: actions, errors: errors, done: errors.isEmpty)
    }

    /// Starts the units of `stopped` (in reverse) that still exist and waits for each; a unit that
    /// no longer exists or that its own Condition* keeps inactive is said, not an error.
    static package func startUnits(_ stopped: [String], services: any ServiceManager, timeout: Int) async -> (actions: [String], errors: [String], gone: [String]) {
        do {
            let o = try await services.startAndWait(Array(stopped.reversed()), timeout: Double(timeout))
            var actions: [String] = []
            if !o.active.isEmpty { actions.append("started \(stopped.filter { o.active.contains($0) }.joined(separator: " "))") }
            actions += o.notes
            let errors = o.failed.isEmpty ? [] : ["cannot start \(o.failed.map(\.display).joined(separator: "; "))" + (o.startError.map { ": \($0)" } ?? "")]
            return (actions, errors, o.gone)
        } catch {
            return ([], ["cannot start \(stopped.joined(separator: " ")): \(error)"], [])
        }
    }
}
