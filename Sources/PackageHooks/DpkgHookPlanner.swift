import Foundation
import MSBKit
import MSBPackages

/// The dpkg pre-invoke hook's decision. dpkg runs `sh -c <hook>` with `DPKG_HOOK_ACTION` set and
/// nothing else about the transaction, so the hook finds its dpkg process among its ancestors,
/// reads dpkg's command line and working directory from /proc, reads the .deb control fields and
/// dpkg's database, and decides like the apt hook.
public enum DpkgHookPlanner {
    public static let actionVariable = "DPKG_HOOK_ACTION"
    /// dpkg's actions that run invoke hooks; only the first five can change a package's version.
    public static let hookActions: Set<String> = [
        "install", "unpack", "configure", "triggers-only", "remove", "purge", "add-architecture", "remove-architecture",
    ]

    /// What the hook learned about its dpkg run from the process table.
    public struct Context: Sendable, Equatable {
        public var action: String
        public var invocation: DpkgInvocation
        /// dpkg's working directory (relative .deb paths are relative to it).
        public var workingDirectory: String?
        /// The dpkg process, if found.
        public var dpkg: ProcessEntry?
        /// The apt run above us whose apt hook already handled the transaction.
        public var coveringAptRun: ProcessEntry?
        /// DPKG_ROOT as dpkg exported it ("" for /).
        public var dpkgRoot: String

        public init(action: String, invocation: DpkgInvocation, workingDirectory: String? = nil, dpkg: ProcessEntry? = nil,
                    coveringAptRun: ProcessEntry? = nil, dpkgRoot: String = "") {
            self.action = action
            self.invocation = invocation
            self.workingDirectory = workingDirectory
            self.dpkg = dpkg
            self.coveringAptRun = coveringAptRun
            self.dpkgRoot = dpkgRoot
        }
    }

    /// Gathers the context for the process `pid` (normally our own) from `table`.
    public static func context(environment: [String: String], pid: Int32, table: ProcessTable = ProcessTable(),
                               markers: [String: String]) throws -> Context {
        guard let action = environment[actionVariable], !action.isEmpty else {
            throw BackupError(.usage, "dpkg-hook must be run by dpkg as a pre-invoke hook (\(actionVariable) is not set)")
        }
        let ancestors = table.ancestors(of: pid)
        let dpkg = ancestors.first { $0.command == "dpkg" }
        var invocation = DpkgInvocation()
        var cwd: String?
        if let dpkg {
            guard let argv = table.arguments(pid: dpkg.pid) else {
                throw BackupError.unavailable("cannot read the command line of dpkg (pid \(dpkg.pid)) from /proc")
            }
            invocation = DpkgInvocation.parse(arguments: Array(argv.dropFirst()))
            cwd = table.workingDirectory(pid: dpkg.pid)
        }
        return Context(action: action, invocation: invocation, workingDirectory: cwd, dpkg: dpkg,
                       coveringAptRun: AptRunMarker.coveringRun(ancestors: ancestors, markers: markers),
                       dpkgRoot: environment["DPKG_ROOT"] ?? "")
    }

    /// The decision for a gathered context.
    public static func decide(_ context: Context, inspector: some DpkgPackageInspector) async throws -> HookDecision {
        if let apt = context.coveringAptRun {
            return .skip("run by apt (pid \(apt.pid)), whose apt hook already handled this transaction")
        }
        if !context.dpkgRoot.isEmpty && context.dpkgRoot != "/" {
            return .skip("dpkg works on another root (\(context.dpkgRoot)), not on this system's MAAS")
        }
        guard context.dpkg != nil else {
            return .skip("no dpkg process among the hook's parents; nothing to inspect")
        }
        let inv = context.invocation
        if inv.noAct {
            return .skip("dpkg --no-act changes nothing")
        }
        switch context.action {
        case "install", "unpack":
            return try await decideInstall(inv, cwd: context.workingDirectory, inspector: inspector)
        case "remove", "purge":
            return try await decideRemove(inv, purge: context.action == "purge", inspector: inspector)
        default:
            return .skip("dpkg --\(context.action) changes no package version")
        }
    }

    /// Absolute archive paths for the operands (folders searched for *.deb with --recursive).
    public static func archivePaths(_ inv: DpkgInvocation, cwd: String?) -> [String] {
        func absolute(_ p: String) -> String {
            if p.hasPrefix("/") { return p }
            let base = cwd ?? FileManager.default.currentDirectoryPath
            return base.hasSuffix("/") ? base + p : base + "/" + p
        }
        guard inv.recursive else { return inv.operands.map(absolute) }
        var out: [String] = []
        for dir in inv.operands.map(absolute) {
            guard let walker = FileManager.default.enumerator(atPath: dir) else { continue }
            var found: [String] = []
            while let rel = walker.nextObject() as? String {
                if rel.hasSuffix(".deb") { found.append(dir + "/" + rel) }
            }
            out += found.sorted()
        }
        return out
    }

    static package func decideInstall(_ inv: DpkgInvocation, cwd: String?, inspector: some DpkgPackageInspector) async throws -> HookDecision {
        var changes: [PackageChange] = []
        var warnings: [String] = []
        for path in archivePaths(inv, cwd: cwd) {
            let control: DebControl
            do {
                control = try await inspector.control(ofArchive: path)
            } catch {
                // dpkg will refuse this file itself; it cannot install a MAAS package from it.
                warnings.append("skipped \(path): \(error)")
                continue
            }
            guard MaasPackages.isMaasPackage(control.package) else { continue }
            let instances = try await inspector.instances(of: control.package)
            let same = instances.first {
                $0.isPresent && ($0.architecture == control.architecture || $0.architecture == "all" || control.architecture == "all")
            }
            changes.append(PackageChange.classify(name: control.package, architecture: control.architecture,
                                                  old: same?.version, new: control.version, archivePath: path))
        }
        return HookDecision.decide(changes, warnings: warnings)
    }

    static package func decideRemove(_ inv: DpkgInvocation, purge: Bool, inspector: some DpkgPackageInspector) async throws -> HookDecision {
        var targets: [InstalledPackage] = []
        if inv.pending {
            // --remove --pending acts on packages selected deinstall or purge; --purge --pending on purge.
            let wanted: Set<String> = purge ? ["purge"] : ["deinstall", "purge"]
            targets = try await inspector.allPackages().filter { wanted.contains($0.want) && MaasPackages.isMaasPackage($0.name) }
        } else {
            for operand in inv.operands {
                let parts = operand.split(separator: ":", maxSplits: 1).map(String.init)
                guard let name = parts.first, MaasPackages.isMaasPackage(name) else { continue }
                let arch = parts.count > 1 ? parts[1] : nil
                targets += try await inspector.instances(of: name).filter { arch == nil || $0.architecture == arch }
            }
        }
        var changes: [PackageChange] = []
        for p in targets {
            if p.isPresent {
                changes.append(PackageChange(name: p.name, architecture: p.architecture, oldVersion: p.version, newVersion: nil,
                                             kind: purge ? .purge : .remove))
            } else if purge && p.isConfigFilesOnly {
                // Purging deletes the configuration files that are still there.
                changes.append(PackageChange(name: p.name, architecture: p.architecture, oldVersion: p.version, newVersion: nil, kind: .purge))
            }
        }
        if changes.isEmpty && targets.isEmpty && inv.operands.isEmpty && !inv.pending {
            return .skip("dpkg --\(purge ? "purge" : "remove") names no package")
        }
        return HookDecision.decide(changes)
    }
}
