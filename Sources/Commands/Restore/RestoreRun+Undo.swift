import Foundation
import MSBKit
import MSBDatabase
import MSBServices

extension RestoreRun {
    /// After a failure: RestoreUndo (the same engine `recover` uses) on the run's state, and one
    /// message that says what state everything is in.
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
        if error is PackageStepError {
            // keepRestoredState ran before the package step: the files and the database stay.
            filesFinal = true
            notes.append("the database and the files are restored from the backup, but the MAAS packages were not reinstalled")
        }
        try? record()
        var state = journal.record
        state.stoppedServices = stopped
        state.servicesRestarted = !servicesDown
        let journal = self.journal
        var undo = RestoreUndo(record: state, services: services, startTimeout: config.startTimeout, target: { [p] in p.target },
                               save: { r in try? journal.update { $0 = r } }, log: { [weak self] in self?.log(.info, $0) })
        let outcome = await undo.run()
        swaps = undo.record.swaps
        database = undo.record.database
        stopped = undo.record.stoppedServices
        servicesDown = !undo.record.servicesRestarted
        notes += outcome.actions
        notes += outcome.errors.map { $0.hasPrefix("CRITICAL") ? $0 : "CRITICAL: " + $0 }
        if !servicesDown && !stopped.isEmpty { notes.append("services started again") }
        if downSince == nil { notes.append("MAAS was not stopped") }
        if outcome.done { journal.close() } else {
            notes.append("`maas-snapshot-backup recover` retries what is left (journal \(journal.path))")
        }
        return BackupError(code, "\(pipeline.options.command) failed at step '\(step)': \(cause); " + notes.joined(separator: "; "))
    }
}
