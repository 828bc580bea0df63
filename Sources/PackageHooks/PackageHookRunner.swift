import Foundation
import MSBKit
import MSBPackages
#if canImport(Glibc)
import Glibc
#endif

/// The whole of `maas-snapshot-backup apt-hook` and `dpkg-hook`, minus the backup itself, which
/// the caller passes in (the CLI's backup with `--reason`). Returns the exit code for the hook:
/// non-zero makes apt or dpkg stop before changing anything.
///
/// - Malformed hook input, an unreadable process table or dpkg database, or a failed backup:
///   with `block` (`hook.on_failure: block`) the hook fails (exit 65 for bad input, else the error's code);
///   with `warn` it prints a warning and exits 0 so that the transaction goes on without a backup.
/// - The apt hook leaves a marker for its apt process (`AptRunMarker`) before it backs up, so the
///   dpkg hook of that apt run's dpkg calls stays quiet.
public enum PackageHookRunner {
    public typealias Backup = @Sendable (_ reason: String) async throws -> Void
    public typealias Log = @Sendable (_ line: String) -> Void

    static package let prefix = "maas-snapshot-backup"

    /// `apt-hook`: reads apt's Version 3 input from APT_HOOK_INFO_FD.
    public static func apt(environment: [String: String], block: Bool, log: Log,
                           markerDirectory: String = AptRunMarker.defaultDirectory, table: ProcessTable = ProcessTable(),
                           pid: Int32 = getpid(), backup: Backup) async -> Int32 {
        let decision: HookDecision
        do {
            let input = try AptHookInput.read(environment: environment)
            decision = input.decision
        } catch {
            return fail("apt hook: \(error.description)", code: ExitCode.dataError.rawValue, block: block, log: log)
        }
        AptRunMarker.removeStale(directory: markerDirectory, table: table)
        if let frontEnd = AptRunMarker.frontEnd(in: table.ancestors(of: pid)) {
            do {
                try AptRunMarker.write(for: frontEnd, directory: markerDirectory)
            } catch {
                log("\(prefix): warning: \(error); dpkg's hook may decide again")
            }
        }
        return await act(on: decision, hook: "apt hook", block: block, log: log, backup: backup)
    }

    /// `dpkg-hook`: run by dpkg as a pre-invoke hook (DPKG_HOOK_ACTION set).
    public static func dpkg(environment: [String: String], block: Bool, log: Log,
                            markerDirectory: String = AptRunMarker.defaultDirectory, table: ProcessTable = ProcessTable(),
                            pid: Int32 = getpid(), inspector: some DpkgPackageInspector = DpkgTools(),
                            backup: Backup) async -> Int32 {
        let decision: HookDecision
        do {
            let context = try DpkgHookPlanner.context(environment: environment, pid: pid, table: table,
                                                      markers: AptRunMarker.readMarkers(directory: markerDirectory))
            decision = try await DpkgHookPlanner.decide(context, inspector: inspector)
        } catch let e as BackupError {
            if e.code == .usage {
                log("\(prefix): error: \(e.description)")
                return e.code.rawValue
            }
            return fail("dpkg hook: \(e.description)", code: e.code.rawValue, block: block, log: log)
        } catch {
            return fail("dpkg hook: \(error)", code: ExitCode.failed.rawValue, block: block, log: log)
        }
        return await act(on: decision, hook: "dpkg hook", block: block, log: log, backup: backup)
    }

    static package func act(on decision: HookDecision, hook: String, block: Bool, log: Log, backup: Backup) async -> Int32 {
        for w in decision.warnings { log("\(prefix): \(hook): warning: \(w)") }
        guard decision.backupNeeded, let reason = decision.reason else {
            return 0
        }
        log("\(prefix): \(hook): backing up MAAS first (\(reason))")
        do {
            try await backup(reason)
            return 0
        } catch let e as BackupError {
            return fail("\(hook): the backup before the package change failed: \(e.description)", code: e.code.rawValue,
                        block: block, log: log)
        } catch {
            return fail("\(hook): the backup before the package change failed: \(error)", code: ExitCode.failed.rawValue,
                        block: block, log: log)
        }
    }

    static package func fail(_ message: String, code: Int32, block: Bool, log: Log) -> Int32 {
        if block {
            log("\(prefix): error: \(message)")
            log("\(prefix): the package change is stopped; to go on without a backup, run it again with MAAS_SNAPSHOT_BACKUP_SKIP=1 (e.g. MAAS_SNAPSHOT_BACKUP_SKIP=1 apt upgrade), or set hook.on_failure: warn in /etc/maas-snapshot-backup/config.yaml")
            return code == 0 ? ExitCode.failed.rawValue : code
        }
        log("\(prefix): warning: \(message); going on without a backup (hook.on_failure: warn)")
        return 0
    }
}
