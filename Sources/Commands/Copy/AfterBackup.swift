import Foundation
import MSBKit
import MSBBackupSet
import MSBRemote
#if canImport(Glibc)
import Glibc
#endif

/// `copy: after-backup`: the copy after each successful backup. An ordinary backup copies at
/// once (the run's result holds the outcome; a failure makes the run partial, exit 3). A
/// pre-upgrade backup never makes apt wait for the network: its copy is started detached and the
/// backup records that it was scheduled: a transient systemd unit when systemd runs
/// (`systemd-run --unit maas-snapshot-backup-copy-<id> --collect`), else a process of its own
/// (setsid --fork). The detached `copy` records its result in the state file and the metrics.
public enum AfterBackupCopy {
    /// `command`: our executable and the arguments before `copy` (e.g. `--config` is added after);
    /// nil when unknown (the copy then runs inline even for a pre-upgrade backup).
    public static func run(config: Config, archive: String, reason: String, command: CopyCommand?,
                           log: LogSink?) async -> CopyReport {
        let repository = config.remote.map { ResticErrorReporter.maskURLPassword($0.repository) } ?? "-"
        // Case-insensitive here alone, as before (a `--reason PRE-UPGRADE` copy is detached too).
        if BackupReason(recorded: reason.lowercased()) == .preUpgrade, let command {
            do {
                return try await schedule(config: config, archive: archive, command: command, log: log)
            } catch {
                var r = CopyReport(status: "failed", repository: repository)
                r.error = "cannot start the copy of \((archive as NSString).lastPathComponent) in the background: \(error)"
                r.exitCode = (error as? BackupError)?.code.rawValue ?? 1
                return r
            }
        }
        do {
            return try await CopyPipeline(config: config, log: log).copy(archive: archive)
        } catch let f as CopyFailure {
            return f.report
        } catch {
            var r = CopyReport(status: "failed", repository: repository)
            r.error = "copy failed: \(error)"
            r.exitCode = (error as? BackupError)?.code.rawValue ?? 1
            return r
        }
    }

    /// Starts `copy ARCHIVE` detached and records that it was scheduled.
    public static func schedule(config: Config, archive: String, command: CopyCommand, log: LogSink?) async throws -> CopyReport {
        let remote = try CopyPipeline.remote(config)
        let name = (archive as NSString).lastPathComponent
        let args = ["copy", archive] + (command.configPath.map { ["--config", $0] } ?? [])
        let id = ArchiveName.timestamp(Date()) + "-\(getpid())"
        let systemdRun = command.useSystemd && FileManager.default.fileExists(atPath: "/run/systemd/system")
            ? Command.find("systemd-run", extraDirs: ["/usr/bin", "/bin"]) : nil
        let unit = "maas-snapshot-backup-copy-\(id)"
        let how = systemdRun != nil ? "systemd unit \(unit).service" : "a detached process (setsid)"
        // Recorded first: the detached copy may end (and record its result) before we get here again.
        var state = CopyState.load(stateDir: config.stateDir)
        let previous = state.last
        state.last = .init(status: "scheduled", at: ArchiveName.iso8601(Date()), archives: [CopyPipeline.baseName(archive)], scheduledAs: how)
        try? state.save(stateDir: config.stateDir)
        do {
            if let systemdRun {
                let r = try await Command.run(systemdRun, ["--unit", unit, "--collect", "--quiet", "--no-block", "--", command.executable] + args)
                guard r.succeeded else {
                    throw BackupError.failed("systemd-run failed: \(r.lastErrorLine)", hint: "run `maas-snapshot-backup copy \(name)` by hand")
                }
            } else {
                try await Command.spawnDetached(command.executable, args)
            }
        } catch {
            state.last = previous
            try? state.save(stateDir: config.stateDir)
            throw error
        }
        log?(.info, "the copy of \(name) to \(ResticErrorReporter.maskURLPassword(remote.repository)) runs in the background as \(how); `maas-snapshot-backup status` shows its result")
        var r = CopyReport(status: "scheduled", repository: ResticErrorReporter.maskURLPassword(remote.repository))
        r.scheduledAs = how
        return r
    }
}

/// How to run `copy` in another process: our executable and the config file given to us.
public struct CopyCommand: Sendable {
    public var executable: String
    public var configPath: String?
    /// false: never systemd-run (tests).
    public var useSystemd: Bool
    public init(executable: String, configPath: String?, useSystemd: Bool = true) {
        self.executable = executable
        self.configPath = configPath
        self.useSystemd = useSystemd
    }
}
