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
    public typealias Log = LogSink

    static package let prefix = "maas-snapshot-backup"

    /// What the hooks need from the config, loaded only once a MAAS package is known to change
    /// (or the package list cannot be read): a broken config never stops `apt install htop`.
    public struct Policy: Sendable {
        public var block: Bool
        public var backup: Backup
        public init(block: Bool, backup: @escaping Backup) {
            self.block = block
            self.backup = backup
        }
    }
    public typealias LoadPolicy = @Sendable () throws -> Policy

    /// `apt-hook` with a policy already known (tests).
    public static func apt(environment: [String: String], block: Bool, log: Log,
                           markerDirectory: String = AptRunMarker.defaultDirectory, table: ProcessTable = ProcessTable(),
                           pid: Int32 = getpid(), backup: @escaping Backup) async -> Int32 {
        await apt(environment: environment, log: log, markerDirectory: markerDirectory, table: table, pid: pid,
                  policy: { Policy(block: block, backup: backup) })
    }

    /// `apt-hook`: reads apt's Version 3 input from APT_HOOK_INFO_FD. The package lines are looked
    /// at first: when none names a MAAS package the hook returns 0 before it reads the config or
    /// parses anything else (odd bytes in apt's options included).
    public static func apt(environment: [String: String], log: Log,
                           markerDirectory: String = AptRunMarker.defaultDirectory, table: ProcessTable = ProcessTable(),
                           pid: Int32 = getpid(), policy: LoadPolicy) async -> Int32 {
        let bytes: [UInt8]
        do {
            bytes = try AptHookInput.readAll(fd: AptHookInput.infoFD(environment: environment))
        } catch {
            return await failLoading("apt hook: \(error.description)", code: ExitCode.dataError.rawValue, policy: policy, log: log)
        }
        AptRunMarker.removeStale(directory: markerDirectory, table: table)
        if let frontEnd = AptRunMarker.frontEnd(in: table.ancestors(of: pid)) {
            do {
                try AptRunMarker.write(for: frontEnd, directory: markerDirectory)
            } catch {
                log(.warning, "\(prefix): warning: \(error); dpkg's hook may decide again")
            }
        }
        if AptHookInput.namesMaasPackage(bytes: bytes) == false { return 0 }
        let p: Policy
        switch loadPolicy(policy, log: log) {
        case .success(let loaded): p = loaded
        case .failure(let f): return f.code
        }
        let decision: HookDecision
        do {
            decision = try AptHookInput.parse(bytes: bytes).decision
        } catch {
            return fail("apt hook: \(error.description)", code: ExitCode.dataError.rawValue, block: p.block, log: log)
        }
        return await act(on: decision, hook: "apt hook", block: p.block, log: log, backup: p.backup)
    }

    /// `dpkg-hook` with a policy already known (tests).
    public static func dpkg(environment: [String: String], block: Bool, log: Log,
                            markerDirectory: String = AptRunMarker.defaultDirectory, table: ProcessTable = ProcessTable(),
                            pid: Int32 = getpid(), inspector: some DpkgPackageInspector = DpkgTools(),
                            backup: @escaping Backup) async -> Int32 {
        await dpkg(environment: environment, log: log, markerDirectory: markerDirectory, table: table, pid: pid,
                   inspector: inspector, policy: { Policy(block: block, backup: backup) })
    }

    /// `dpkg-hook`: run by dpkg as a pre-invoke hook (DPKG_HOOK_ACTION set). Decides from dpkg's
    /// arguments first; the config is read only when a MAAS package changes or the decision failed.
    public static func dpkg(environment: [String: String], log: Log,
                            markerDirectory: String = AptRunMarker.defaultDirectory, table: ProcessTable = ProcessTable(),
                            pid: Int32 = getpid(), inspector: some DpkgPackageInspector = DpkgTools(),
                            policy: LoadPolicy) async -> Int32 {
        let decision: HookDecision
        do {
            let context = try DpkgHookPlanner.context(environment: environment, pid: pid, table: table,
                                                      markers: AptRunMarker.readMarkers(directory: markerDirectory))
            decision = try await DpkgHookPlanner.decide(context, inspector: inspector)
        } catch let e as BackupError {
            if e.code == .usage {
                log(.error, "\(prefix): error: \(e.description)")
                return e.code.rawValue
            }
            return await failLoading("dpkg hook: \(e.description)", code: e.code.rawValue, policy: policy, log: log)
        } catch {
            return await failLoading("dpkg hook: \(error)", code: ExitCode.failed.rawValue, policy: policy, log: log)
        }
        guard decision.backupNeeded else {
            for w in decision.warnings { log(.warning, "\(prefix): dpkg hook: warning: \(w)") }
            return 0
        }
        let p: Policy
        switch loadPolicy(policy, log: log) {
        case .success(let loaded): p = loaded
        case .failure(let f): return f.code
        }
        return await act(on: decision, hook: "dpkg hook", block: p.block, log: log, backup: p.backup)
    }

    struct PolicyFailed: Error { var code: Int32 }

    /// The policy, or the exit code after one line saying how to fix the config or skip the backup.
    static func loadPolicy(_ policy: LoadPolicy, log: Log) -> Result<Policy, PolicyFailed> {
        do { return .success(try policy()) } catch let e as BackupError {
            log(.error, "\(prefix): error: \(e.description); fix the config, or set MAAS_SNAPSHOT_BACKUP_SKIP=1 to go on without a backup")
            return .failure(PolicyFailed(code: e.code.rawValue))
        } catch {
            log(.error, "\(prefix): error: \(error); set MAAS_SNAPSHOT_BACKUP_SKIP=1 to go on without a backup")
            return .failure(PolicyFailed(code: ExitCode.failed.rawValue))
        }
    }

    /// A failure before the package list was known: decided by the config's policy.
    static func failLoading(_ message: String, code: Int32, policy: LoadPolicy, log: Log) async -> Int32 {
        let p: Policy
        switch loadPolicy(policy, log: log) {
        case .success(let loaded): p = loaded
        case .failure(let f): return f.code
        }
        return fail(message, code: code, block: p.block, log: log)
    }

    static package func act(on decision: HookDecision, hook: String, block: Bool, log: Log, backup: Backup) async -> Int32 {
        for w in decision.warnings { log(.warning, "\(prefix): \(hook): warning: \(w)") }
        guard decision.backupNeeded, let reason = decision.reason else {
            return 0
        }
        log(.info, "\(prefix): \(hook): backing up MAAS first (\(reason))")
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
            log(.error, "\(prefix): error: \(message)")
            log(.error, "\(prefix): the package change is stopped; to go on without a backup, run it again with MAAS_SNAPSHOT_BACKUP_SKIP=1 (e.g. MAAS_SNAPSHOT_BACKUP_SKIP=1 apt upgrade), or set hook.on_failure: warn in /etc/maas-snapshot-backup/config.yaml")
            return code == 0 ? ExitCode.failed.rawValue : code
        }
        log(.warning, "\(prefix): warning: \(message); going on without a backup (hook.on_failure: warn)")
        return 0
    }
}
