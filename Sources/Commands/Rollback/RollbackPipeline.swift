import Foundation
import MSBKit
import MSBRestore
import MSBBackupSet
import MSBArchive
import MSBPackages
#if canImport(Glibc)
import Glibc
#endif

/// One MAAS package a rollback puts back.
public struct PackageReinstall: Sendable, Codable {
    public var package: String
    public var backupVersion: String
    public var installedVersion: String?
    /// The saved .deb (absolute path).
    public var deb: String
    /// Its SHA-256, as the backup recorded it and as checked on the private copy dpkg installs.
    public var sha256: String
    /// The packages its `Pre-Depends:` names (read from the checked copy), versions dropped.
    public var preDepends: [String] = []

    package init(package: String, backupVersion: String, installedVersion: String?, deb: String, sha256: String, preDepends: [String] = []) {
        self.package = package; self.backupVersion = backupVersion; self.installedVersion = installedVersion
        self.deb = deb; self.sha256 = sha256; self.preDepends = preDepends
    }

    /// Package names of a `Pre-Depends:` or `Depends:` value ("a (= 1), b | c" → a, b, c).
    static package func names(_ field: String) -> [String] {
        field.split(whereSeparator: { $0 == "," || $0 == "|" }).compactMap {
            $0.trimmingCharacters(in: .whitespaces).split(separator: " ").first.map { String($0.split(separator: ":").first ?? $0) }
        }
    }
}

public struct RollbackPlan: Sendable, Codable {
    public var restore: RestorePlan
    public var packages: [PackageReinstall]
    /// The command that reinstalls them (no network).
    public var command: [String]
    /// MAAS packages installed now that the backup did not have (maas-agent after 3.4 → 3.5): removed
    /// (conffiles kept) before the backup's versions go back, so that dpkg is not left broken.
    public var notInBackup: [String]
    /// The command that removes them, run before `command`; empty when there are none.
    public var removeCommand: [String] = []
    /// The backup's packages that another of them Pre-Depends on (maas-common, which maas-agent
    /// 3.5+ Pre-Depends on at its own version), put back first, alone; empty when there are none.
    public var firstCommand: [String] = []
}

/// The package step of a rollback: what is removed, what is reinstalled, and the two dpkg commands.
public struct PackageStep: Sendable {
    public var changes: [PackageReinstall]
    /// MAAS packages installed now but absent from the backup's list.
    public var remove: [String]
    public var removeCommand: [String]
    /// dpkg -i of the packages another one Pre-Depends on (before `command`; may be empty).
    public var firstCommand: [String] = []
    public var command: [String]
}

public struct RollbackResult: Sendable, Codable {
    public var status: String
    public var dryRun: Bool
    public var plan: RollbackPlan?
    public var restore: RestoreResult?
}

/// `rollback [ARCHIVE]`: restore a pre-upgrade backup (by default the newest), then reinstall the
/// MAAS package versions it recorded from the .deb files saved beside it, then start and check.
/// Refused while apt or dpkg runs (it would need their lock, and their hooks would run it inside them).
public enum RollbackPipeline {
    /// Why a rollback cannot run now, or nil.
    public static func insideAptOrDpkg(environment: [String: String], root: String) -> String? {
        if environment["DPKG_RUNNING_VERSION"] != nil { return "it runs inside dpkg (DPKG_RUNNING_VERSION is set)" }
        if environment["APT_HOOK_INFO_FD"] != nil { return "it runs inside an apt hook (APT_HOOK_INFO_FD is set)" }
        for f in ["/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock"] {
            if let pid = lockHolder(Config.join(root, f)) {
                return "\(Config.join(root, f)) is held\(pid > 0 ? " by PID \(pid)" : "") (apt or dpkg is running)"
            }
        }
        return nil
    }

    /// The PID holding a write lock on `path` (fcntl F_GETLK; the lock is not taken), -1 when the
    /// holder is unknown (an open file description lock), nil when nobody holds it.
    static package func lockHolder(_ path: String) -> Int32? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var fl = flock()
        fl.l_type = Int16(F_WRLCK)
        fl.l_whence = Int16(SEEK_SET)
        fl.l_start = 0
        fl.l_len = 0
        guard fcntl(fd, F_GETLK, &fl) == 0 else { return nil }
        if fl.l_type == Int16(F_UNLCK) { return nil }
        return fl.l_pid > 0 ? fl.l_pid : -1
    }

    /// The newest pre-upgrade backup in the destination.
    public static func defaultArchive(config: Config) throws -> String {
        guard let e = Catalog.entries(destination: config.destination).first(where: { $0.hasManifest && $0.isPreUpgrade }) else {
            throw BackupError.unavailable("there is no pre-upgrade backup in \(config.destination)",
                                          hint: "name an archive: maas-snapshot-backup rollback ARCHIVE")
        }
        return e.archive
    }

    /// The packages to put back and the command that does it. Each saved .deb is copied into
    /// `staging` (a private folder) and its SHA-256 checked against the manifest's there; dpkg gets
    /// the checked copies, so nothing can swap a .deb between the check and the install.
    static package func packagePlan(manifest: Manifest, config: Config, archive: String, staging: String) async throws -> PackageStep {
        let installed = await InstalledPackages.installed(root: config.root)
        var changes: [PackageReinstall] = []
        var missing: [String] = []
        for (pkg, version) in manifest.maasPackages.sorted(by: { $0.key < $1.key }) where installed[pkg] != version {
            guard let rel = manifest.savedDebs?[pkg], let file = ArchiveVerifier.savedDebName(rel) else {
                missing.append("\(pkg) \(version)")
                continue
            }
            guard let want = manifest.savedDebsSha256?[pkg] else {
                missing.append("\(pkg) \(version) (the backup recorded no checksum for it)")
                continue
            }
            let deb = Catalog.debsFolder(archive) + "/" + file
            guard FileManager.default.fileExists(atPath: deb) else {
                missing.append("\(pkg) \(version) (\(deb) is gone)")
                continue
            }
            let copy = staging + "/" + file
            let got = try DebCopy.copy(deb, to: copy)
            guard got == want else {
                throw BackupError.data("\(deb) does not match the SHA-256 the backup recorded for \(pkg) \(version)",
                                       hint: "the saved package was changed or damaged; reinstall MAAS \(version) by hand, then use `maas-snapshot-backup restore`")
            }
            var change = PackageReinstall(package: pkg, backupVersion: version, installedVersion: installed[pkg], deb: deb, sha256: want)
            if let dpkgDeb = Command.find("dpkg-deb"), let r = try? await Command.run(dpkgDeb, ["--field", copy, "Pre-Depends"]), r.succeeded {
                change.preDepends = PackageReinstall.names(r.stdout)
            }
            changes.append(change)
        }
        if !missing.isEmpty {
            throw BackupError.unavailable("the backup has no saved .deb for \(missing.joined(separator: ", ")): the packages cannot be put back without the network",
                                          hint: "install them by hand, then use `maas-snapshot-backup restore`")
        }
        let remove = notInBackup(installed: installed, backup: manifest.maasPackages)
        guard !changes.isEmpty || !remove.isEmpty else { return PackageStep(changes: [], remove: [], removeCommand: [], command: []) }
        if config.root != "/" {
            throw BackupError.config("rollback reinstalls packages, which it can do only with root: /",
                                     hint: "run it on the MAAS host itself")
        }
        // dpkg itself: the saved .debs are exactly the versions that were installed together, and
        // it downgrades without asking. apt 2.6 refused a saved .deb whose file name lacks the
        // version's epoch ("Pathname to install is not absolute") once the repository no longer
        // had that version: just the case a rollback is for.
        guard let dpkg = Command.find("dpkg") else { throw BackupError.unavailable("dpkg was not found") }
        return commands(dpkg: dpkg, changes: changes, remove: remove)
    }

    /// The MAAS packages installed now that the backup's list does not have, sorted.
    static package func notInBackup(installed: [String: String], backup: [String: String]) -> [String] {
        installed.keys.filter { backup[$0] == nil && MaasPackages.isMaasPackage($0) }.sorted()
    }

    /// The two dpkg runs of the package step. First `dpkg --remove` (not --purge: the conffiles stay)
    /// of the MAAS packages the backup did not have, with --force-depends because their dependents
    /// (maas-rack-controller 3.6 depends on maas-agent) are replaced by the backup's versions in the
    /// second run, `dpkg -i` of the saved .debs (shown with their saved paths; run with the checked copies).
    ///
    /// The saved .debs another saved .deb Pre-Depends on go back first, in a dpkg run of their own
    /// (with --force-depends: the installed packages that depend on their current version are
    /// replaced in the next run). In one run dpkg unpacks in the order given and refuses a package
    /// whose Pre-Depends is not configured yet: maas-agent 3.5.13 `Pre-Depends: maas-common (=
    /// 1:3.5.13-0ubuntu1)` while maas-common is still 3.6.5 (rollback from 3.6 to 3.5, pkg-60).
    static package func commands(dpkg: String, changes: [PackageReinstall], remove: [String]) -> PackageStep {
        let removeCommand = remove.isEmpty ? [] : [dpkg, "--force-depends", "--remove"] + remove
        let names = Set(changes.map(\.package))
        let preDepended = Set(changes.flatMap { c in c.preDepends.filter { $0 != c.package && names.contains($0) } })
        let first = changes.filter { preDepended.contains($0.package) }
        let rest = changes.filter { !preDepended.contains($0.package) }
        let firstCommand = first.isEmpty ? [] : [dpkg, "--force-depends", "--force-confdef", "--force-confold", "-i"] + first.map(\.deb)
        let command = rest.isEmpty ? [] : [dpkg, "--force-confdef", "--force-confold", "-i"] + rest.map(\.deb)
        return PackageStep(changes: changes, remove: remove, removeCommand: removeCommand, firstCommand: firstCommand, command: command)
    }

    /// A rollback; recorded for `status` and the metrics (RestoreOutcomes) unless it is a dry run.
    public static func run(archive: String?, config: Config, dryRun: Bool, options base: RestoreOptions,
                           environment: [String: String] = ProcessInfo.processInfo.environment) async throws -> RollbackResult {
        if dryRun { return try await runUnrecorded(archive: archive, config: config, dryRun: true, options: base, environment: environment) }
        return try await RestoreOutcomes.recording(config: config, command: "rollback", log: base.log, downtimeMs: { $0.restore?.downtimeMs }) {
            try await runUnrecorded(archive: archive, config: config, dryRun: false, options: base, environment: environment)
        }
    }

    static func runUnrecorded(archive: String?, config: Config, dryRun: Bool, options base: RestoreOptions,
                              environment: [String: String]) async throws -> RollbackResult {
        if let why = insideAptOrDpkg(environment: environment, root: config.root) {
            throw BackupError(.locked, "rollback cannot run now: \(why)", hint: "run it after apt or dpkg has finished")
        }
        let path = try ArchiveVerifier.open(try archive ?? defaultArchive(config: config), config: config).path
        let staging = try PrivateDir.makeTemporary()
        defer { staging.remove() }
        var options = base
        options.command = "rollback"
        options.skipVersionGuard = true
        let restore = try RestorePipeline(config: config, options: options)

        // Restore's plan, then the packages' (each .deb copied and checked): nothing changed yet.
        let clock = Stopwatch()
        let prepared = try await restore.prepare(archive: path)
        let packages = try await packagePlan(manifest: prepared.manifest, config: config, archive: path, staging: staging.path)
        var plan = RollbackPlan(restore: prepared.plan, packages: packages.changes, command: packages.command, notInBackup: packages.remove,
                                removeCommand: packages.removeCommand)
        plan.firstCommand = packages.firstCommand
        if dryRun { return RollbackResult(status: "dry-run", dryRun: true, plan: plan, restore: nil) }

        // Restore's steps in turn, with the packages put back between the files and the start.
        let run = try await restore.begin(prepared)
        defer { run.end() }
        do {
            // MAAS runs while the dump loads and the files are extracted beside the live ones; it
            // is down from the stop to the start.
            try await run.loadDatabase()
            try await run.stageFiles()
            try await run.stopServices()
            try await run.swapDatabase()
            try await run.swapFiles()
            try run.keepRestoredState(step: "packages")
            do {
                run.packages = try await reinstall(packages, config: config, staging: staging.path, log: base.log)
                // dpkg's maintainer scripts reload systemd; again here so that the units of removed
                // packages read as gone (not started, not retried by recover).
                if !packages.command.isEmpty || !packages.firstCommand.isEmpty || !packages.removeCommand.isEmpty { try await restore.services.daemonReload() }
            } catch {
                throw PackageStepError(message: "\(error)")
            }
            let result = try await run.startAndCheck(clock: clock)
            return RollbackResult(status: "ok", dryRun: false, plan: plan, restore: result)
        } catch {
            throw await run.recoverAfterFailure(error)
        }
    }

    /// The removal of the MAAS packages the backup did not have, then dpkg with the planned options
    /// on the checked copies in `staging`; returns the MAAS package versions installed afterwards,
    /// which must be the backup's (and none of the removed ones).
    static package func reinstall(_ p: PackageStep, config: Config, staging: String,
                                  log: LogSink?) async throws -> [String: String] {
        let env: [String: String?] = ["DEBIAN_FRONTEND": "noninteractive", "MAAS_SNAPSHOT_BACKUP_SKIP": "1", "APT_LISTCHANGES_FRONTEND": "none"]
        if !p.removeCommand.isEmpty {
            log?(.info, "removing \(p.remove.joined(separator: " ")) (installed now, not in the backup; conffiles kept)")
            let r = try await Command.run(p.removeCommand[0], Array(p.removeCommand.dropFirst()), environment: env)
            guard r.succeeded else {
                throw BackupError.failed("\(p.removeCommand.prefix(3).joined(separator: " ")) failed: \(DpkgErrors.summary(r.stderr) ?? r.lastErrorLine); run by hand: \(p.removeCommand.joined(separator: " ")), then \(p.command.joined(separator: " "))")
            }
        }
        if !p.changes.isEmpty { log?(.info, "reinstalling \(p.changes.map { "\($0.package) \($0.backupVersion)" }.joined(separator: ", "))") }
        let byHand = [p.firstCommand, p.command].filter { !$0.isEmpty }.map { $0.joined(separator: " ") }.joined(separator: ", then ")
        for command in [p.firstCommand, p.command] where !command.isEmpty {
            // The saved paths shown become the checked copies in `staging`.
            let options = command.dropFirst().prefix(while: { $0.hasPrefix("-") })
            let staged = command.dropFirst(1 + options.count).map { staging + "/" + ($0 as NSString).lastPathComponent }
            let r = try await Command.run(command[0], Array(options) + staged, environment: env)
            guard r.succeeded else {
                throw BackupError.failed("\(command.prefix(2).joined(separator: " ")) failed: \(DpkgErrors.summary(r.stderr) ?? r.lastErrorLine); run by hand: \(byHand)")
            }
        }
        let now = await InstalledPackages.installed(root: config.root)
        var wrong = p.changes.filter { now[$0.package] != $0.backupVersion }.map { "\($0.package) is \(now[$0.package] ?? "not installed"), not \($0.backupVersion)" }
        wrong += p.remove.filter { now[$0] != nil }.map { "\($0) is still installed" }
        if !wrong.isEmpty {
            throw BackupError.failed("after reinstalling, \(wrong.joined(separator: "; "))")
        }
        return now
    }
}
