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

extension RestoreRun {
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
            var outcome: UnitStartOutcome?
            do { outcome = try await startServices() } catch {
                do { outcome = try await startServices() } catch {
                    servicesOK = false
                    notes.append("CRITICAL: could not start \(stopped.joined(separator: " ")): \(error); start them by hand")
                }
            }
            if let outcome {
                notes += outcome.notes
                if !outcome.ok {
                    servicesOK = false
                    notes.append("CRITICAL: \(outcome.failed.map(\.display).joined(separator: "; ")) after starting again; see journalctl -u \(outcome.failed[0].unit)")
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
