import Foundation
import MSBKit
import MSBDatabase
import MSBServices

/// The one undo of a restore or rollback, driven by its journal's typed state (RestoreRecord): the
/// failing run itself (RestoreRun.recoverAfterFailure) and `recover`, for a run that died, both use
/// it. In turn: MAAS stopped if it runs while something is to be put back; a staged copy of the
/// files (extracted while MAAS ran) removed; the previous files put back (unless the restored files are final); the databases put back as the state says (new copies
/// dropped before the swap; names swapped back after it, unless the files are final); the stopped
/// units that still exist started and waited for.
package struct RestoreUndo {
    package var record: RestoreRecord
    package let services: any ServiceManager
    /// Seconds each unit may take to be active (Config.startTimeout).
    package let startTimeout: Int
    /// The database server (resolved only when the database needs undoing).
    package let target: () throws -> PostgresTarget
    /// Called after each change with the record as it is now (the journal).
    package let save: (RestoreRecord) -> Void
    package let log: (String) -> Void

    package struct Outcome {
        /// What was done, in order.
        package var actions: [String] = []
        /// What could not be done (each a sentence); empty when everything is undone.
        package var errors: [String] = []
        /// The database undo's own lines (also given to `log` as they happen).
        package var details: [String] = []
        package var done: Bool { errors.isEmpty }
    }

    package init(record: RestoreRecord, services: any ServiceManager, startTimeout: Int, target: @escaping () throws -> PostgresTarget,
                 save: @escaping (RestoreRecord) -> Void, log: @escaping (String) -> Void) {
        self.record = record; self.services = services; self.startTimeout = startTimeout
        self.target = target; self.save = save; self.log = log
    }

    package mutating func run() async -> Outcome {
        var out = Outcome()
        let filesAside = !record.filesFinal && record.swaps.contains(where: { $0.asideDone })
        let dbSwapped = !record.filesFinal && record.database.mayBeSwapped && !(record.databases ?? []).isEmpty
        if (filesAside || dbSwapped) && record.servicesRestarted && !record.stoppedServices.isEmpty {
            // MAAS must not run while its files and database are put back.
            do {
                try await services.stop(record.stoppedServices)
                record.servicesRestarted = false
                save(record)
            } catch {
                out.errors.append("cannot stop \(record.stoppedServices.joined(separator: " ")) to put the previous state back: \(error)")
            }
        }
        // A staged copy (extracted while MAAS ran, never live) goes whether MAAS runs or not.
        let staged = !record.filesFinal && record.swaps.contains(where: { $0.stageStarted == true && !$0.asideDone })
        if staged { dropStaging(&out) }
        if filesAside && out.errors.isEmpty { undoFiles(&out) }
        else if !record.filesFinal && !filesAside { out.actions.append("the files were not changed") }
        if record.database == .untouched {
            out.actions.append("the database was not changed")
        } else if out.errors.isEmpty {
            undoDatabase(&out)
        }
        if !record.servicesRestarted && !record.stoppedServices.isEmpty {
            let s = await Self.startUnits(record.stoppedServices, services: services, timeout: startTimeout)
            out.actions += s.actions
            out.errors += s.errors
            record.stoppedServices = record.stoppedServices.filter { !s.gone.contains($0) }
            if s.errors.isEmpty { record.servicesRestarted = true }
            save(record)
        }
        return out
    }

    private mutating func dropStaging(_ out: inout Outcome) {
        for i in record.swaps.indices where record.swaps[i].stageStarted == true && !record.swaps[i].asideDone {
            let s = record.swaps[i]
            undoSwap(i, &out, done: "removed the restored copy staged in \(s.staging ?? s.live)",
                     failed: { "could not remove the restored copy staged in \(s.staging ?? s.live) (\($0)); the live \(s.live) was not changed" })
        }
    }

    private mutating func undoFiles(_ out: inout Outcome) {
        for i in record.swaps.indices.reversed() where record.swaps[i].asideDone {
            let s = record.swaps[i]
            undoSwap(i, &out, done: "put the previous \(s.live) back",
                     failed: { "CRITICAL: could not put \(s.live) back (\($0)); the previous files are in \(s.aside)" })
        }
    }

    /// TreeSwap.undo of swap `i`, each of its steps saved in the journal; says what happened.
    private mutating func undoSwap(_ i: Int, _ out: inout Outcome, done: String, failed: (any Error) -> String) {
        var s = record.swaps[i]
        do {
            let before = record
            try s.undo { x in var r = before; r.swaps[i] = x; self.save(r) }
            record.swaps[i] = s
            save(record)
            out.actions.append(done)
        } catch {
            record.swaps[i] = s
            out.errors.append(failed(error))
        }
    }

    private mutating func undoDatabase(_ out: inout Outcome) {
        do {
            let names = record.databases ?? []
            let lines = LineCollector(), log = self.log
            let db = DatabaseUndo.run(state: record.database, names: names, keep: record.filesFinal, target: try target(),
                                      command: record.command, log: { lines.lines.append($0); log($0) })
            out.details += lines.lines
            if db.failed { out.errors.append(db.note); return }
            out.actions.append(db.note)
            if !record.filesFinal && !names.isEmpty { record.database = .untouched; save(record) }
        } catch {
            out.errors.append("cannot reach the database to undo it: \(error)")
        }
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

/// Lines gathered from a callback.
private final class LineCollector {
    var lines: [String] = []
}
