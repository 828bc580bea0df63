import Foundation
import MSBKit
import CLinux
import LibPQ
#if canImport(Glibc)
import Glibc
#endif

/// Puts the databases back after a failed or killed restore, from the state its journal recorded:
/// before the swap, the new copies are dropped (the live databases were never touched); after it,
/// the names are swapped back (the restored copy to `<name>_failed_restore_<time>`, then dropped),
/// unless the restore's files stay (`keep`: rollback's package step), when the database stays too.
package enum DatabaseUndo {
    static package func run(state: DatabaseState, names: [DatabaseNames], keep: Bool, target: PostgresTarget, command: String,
                    log: ((String) -> Void)?) -> (note: String, failed: Bool) {
        if state == .untouched { return ("the database was not changed", false) }
        if names.isEmpty {
            // A journal of an older version, which loaded over the live database.
            return state == .restored ? ("the database holds the backup's data", false)
                : ("the database may be incomplete (that \(command) stopped while loading it): run \(command) again", false)
        }
        let tmp: PrivateDir
        let passfile: String?
        do {
            tmp = try PrivateDir.makeTemporary()
            passfile = try target.writePassfile(in: tmp.path, databases: names.flatMap(\.all))
        } catch { return ("could not undo the database (\(error)); run `maas-snapshot-backup recover`", true) }
        defer { tmp.remove() }
        var swapped = state == .swapped || state == .restored
        if state == .swapping {
            do { swapped = try DatabaseSwap.swapped(names, target: target, passfile: passfile) } catch {
                return ("cannot tell whether the databases were swapped (\(error)); run `maas-snapshot-backup recover`", true)
            }
        }
        let previous = names.filter(\.existed).map(\.previous)
        if swapped && keep {
            return ("the database holds the backup's data" + (previous.isEmpty ? "" : "; the previous one is kept as \(previous.joined(separator: ", "))"), false)
        }
        if !swapped {
            let problems = DatabaseSwap.drop(names.map(\.restoring), target: target, passfile: passfile, avoiding: names.map(\.name), log: log)
            if let p = problems.first { return ("the database was not changed, but \(p)", true) }
            return ("the database was not changed (its partly restored copy was dropped)", false)
        }
        do {
            let problems = try DatabaseSwap.swapBack(names, target: target, passfile: passfile, log: log)
            if let p = problems.first { return ("the previous database was put back, but \(p)", true) }
            return ("the previous database was put back (the restored copy was dropped)", false)
        } catch {
            return ("CRITICAL: could not put the previous database back (\(error)); it is kept as \(previous.joined(separator: ", ")): rename it back by hand", true)
        }
    }
}
