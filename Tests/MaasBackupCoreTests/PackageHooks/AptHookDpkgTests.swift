import Foundation
import TestSupport
import Testing
@testable import MaasBackupCore

/// A stand-in for dpkg-deb and dpkg-query.
struct AptHookFakeInspector: DpkgPackageInspector {
    var debs: [String: DebControl] = [:]
    var db: [InstalledPackage] = []

    func control(ofArchive path: String) async throws -> DebControl {
        guard let c = debs[path] else { throw BackupError.data("dpkg-deb cannot read \(path)") }
        return c
    }
    func instances(of name: String) async throws -> [InstalledPackage] { db.filter { $0.name == name } }
    func allPackages() async throws -> [InstalledPackage] { db }
}

let aptHookDpkgEntry = ProcessEntry(pid: 4000, parentPID: 3000, command: "dpkg", startTime: 900)
let aptHookAptEntry = ProcessEntry(pid: 3000, parentPID: 1, command: "apt-get", startTime: 800)

func aptHookDpkgContext(_ action: String, _ args: [String], cwd: String = "/root", apt: ProcessEntry? = nil, root: String = "") -> DpkgHookPlanner.Context {
    DpkgHookPlanner.Context(action: action, invocation: DpkgInvocation.parse(arguments: args), workingDirectory: cwd, dpkg: aptHookDpkgEntry,
                     coveringAptRun: apt, dpkgRoot: root)
}

let aptHookRegion34 = InstalledPackage(name: "maas-region-controller", architecture: "amd64", version: "1:3.4.0-1", want: "install", status: "installed")

/// A fake /proc: hook (500) <- sh (450) <- dpkg (400) <- apt-get (300) <- init (1).
func aptHookFakeProc() throws -> (ProcessTable, String) {
    let root = NSTemporaryDirectory() + "fakeproc-\(UUID().uuidString)"
    let fm = FileManager.default
    func proc(_ pid: Int, _ ppid: Int, _ comm: String, _ start: Int, _ argv: [String]) throws {
        let dir = "\(root)/\(pid)"
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let stat = "\(pid) (\(comm)) S \(ppid) 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 \(start) 0 0"
        try stat.write(toFile: dir + "/stat", atomically: true, encoding: .utf8)
        try Data(argv.map { $0 + "\0" }.joined().utf8).write(to: URL(fileURLWithPath: dir + "/cmdline"))
    }
    try proc(1, 0, "systemd", 1, ["/sbin/init"])
    try proc(300, 1, "apt-get", 1000, ["apt-get", "install", "maas"])
    try proc(400, 300, "dpkg", 1100, ["/usr/bin/dpkg", "--status-fd", "43", "--unpack", "a.deb"])
    try fm.createSymbolicLink(atPath: "\(root)/400/cwd", withDestinationPath: "/var/tmp")
    try proc(450, 400, "sh", 1200, ["sh", "-c", "/etc/maas-snapshot-backup/hooks/dpkg-pre-invoke"])
    try proc(500, 450, "maas-snapshot-b", 1300, ["/usr/sbin/maas-snapshot-backup", "dpkg-hook"])
    return (ProcessTable(procRoot: root), root)
}

@Suite("dpkg hook")
struct AptHookDpkgTests {
    @Test func parsesDpkgCommandLines() {
        // What apt runs.
        var inv = DpkgInvocation.parse(arguments: ["--status-fd", "43", "--no-triggers", "--unpack", "--auto-deconfigure",
                                                   "/var/cache/apt/archives/maas-common_1%3a3.5.0_all.deb", "/tmp/b.deb"])
        #expect(inv.action == "unpack")
        #expect(inv.operands == ["/var/cache/apt/archives/maas-common_1%3a3.5.0_all.deb", "/tmp/b.deb"])
        #expect(!inv.recursive && !inv.pending && !inv.noAct)

        inv = DpkgInvocation.parse(arguments: ["-iR", "debs"])
        #expect(inv.action == "install" && inv.recursive && inv.operands == ["debs"])

        inv = DpkgInvocation.parse(arguments: ["-D", "10", "--log", "/tmp/l", "--root=/srv/chroot", "-r", "maas-cli", "--force-all"])
        #expect(inv.action == "remove")
        #expect(inv.root == "/srv/chroot")
        // Options end at the first operand, as in dpkg.
        #expect(inv.operands == ["maas-cli", "--force-all"])

        inv = DpkgInvocation.parse(arguments: ["--purge", "-a", "--dry-run"])
        #expect(inv.action == "purge" && inv.pending && inv.noAct && inv.operands.isEmpty)

        inv = DpkgInvocation.parse(arguments: ["-D77", "--admindir", "/var/lib/dpkg", "-i", "--", "-weird.deb"])
        #expect(inv.action == "install" && inv.admindir == "/var/lib/dpkg" && inv.operands == ["-weird.deb"])

        inv = DpkgInvocation.parse(arguments: ["--configure", "--pending"])
        #expect(inv.action == "configure" && inv.pending)
    }

    @Test func parsesProcStat() throws {
        let e = try #require(ProcessEntry.parse(stat: "4321 (we) (ird name) S 4000 4321 4000 0 -1 4194560 150 0 0 0 0 0 0 0 20 0 1 0 123456 10000 200 18446744073709551615"))
        #expect(e.pid == 4321 && e.parentPID == 4000 && e.command == "we) (ird name" && e.startTime == 123_456)
        #expect(ProcessEntry.parse(stat: "garbage") == nil)
        #expect(ProcessEntry.parse(stat: "12 (x) S 1") == nil)
        #expect(ProcessEntry.parse(cmdline: Array("dpkg\0-i\0my file.deb\0".utf8)) == ["dpkg", "-i", "my file.deb"])
        #expect(ProcessEntry.parse(cmdline: []) == [])
    }

    @Test func readsTheRealProcessTable() throws {
        let table = ProcessTable()
        let me = getpid()
        let entry = try #require(table.entry(pid: me))
        #expect(entry.pid == me && entry.parentPID == getppid() && entry.startTime > 0)
        let ancestors = table.ancestors(of: me)
        #expect(ancestors.first?.pid == getppid())
        #expect(table.isAlive(entry))
        #expect(table.arguments(pid: me)?.isEmpty == false)
        #expect(table.workingDirectory(pid: me) == FileManager.default.currentDirectoryPath)
    }

    @Test func gathersContextFromProc() throws {
        let (table, root) = try aptHookFakeProc()
        defer { try? FileManager.default.removeItem(atPath: root) }
        #expect(table.ancestors(of: 500).map(\.pid) == [450, 400, 300, 1])

        var ctx = try DpkgHookPlanner.context(environment: ["DPKG_HOOK_ACTION": "unpack", "DPKG_ROOT": ""], pid: 500, table: table, markers: [:])
        #expect(ctx.action == "unpack")
        #expect(ctx.dpkg?.pid == 400)
        #expect(ctx.invocation.operands == ["a.deb"])
        #expect(ctx.workingDirectory == "/var/tmp")
        #expect(ctx.coveringAptRun == nil)

        // The apt hook's marker for apt-get 300 (same start time) covers this dpkg run ...
        ctx = try DpkgHookPlanner.context(environment: ["DPKG_HOOK_ACTION": "unpack"], pid: 500, table: table,
                                   markers: ["apt-run-300": "300 1000\n"])
        #expect(ctx.coveringAptRun?.pid == 300)
        // ... a marker of an earlier process with the same pid does not.
        ctx = try DpkgHookPlanner.context(environment: ["DPKG_HOOK_ACTION": "unpack"], pid: 500, table: table,
                                   markers: ["apt-run-300": "300 999\n"])
        #expect(ctx.coveringAptRun == nil)

        // The apt hook's view: its front-end is the nearest non-shell ancestor.
        let sh = ProcessEntry(pid: 299, parentPID: 300, command: "sh", startTime: 5)
        let hookAncestors = [sh] + table.ancestors(of: 400).filter { $0.pid != 400 }
        #expect(hookAncestors.map(\.pid) == [299, 300, 1])
        #expect(AptRunMarker.frontEnd(in: hookAncestors)?.pid == 300)

        #expect(throws: BackupError.self) { try DpkgHookPlanner.context(environment: [:], pid: 500, table: table, markers: [:]) }
    }

    @Test func markerFilesAndStaleCleanup() throws {
        let dir = NSTemporaryDirectory() + "markers-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let me = try #require(ProcessTable().entry(pid: getpid()))
        try AptRunMarker.write(for: me, directory: dir)
        try AptRunMarker.write(for: aptHookAptEntry, directory: dir) // pid 3000 with a start time that does not match
        try "junk".write(toFile: dir + "/apt-run-77", atomically: true, encoding: .utf8)
        let attrs = try FileManager.default.attributesOfItem(atPath: dir + "/" + AptRunMarker.fileName(for: me))
        #expect((attrs[.posixPermissions] as? Int) == 0o600)
        let markers = AptRunMarker.readMarkers(directory: dir)
        #expect(markers.count == 3)
        #expect(AptRunMarker.coveringRun(ancestors: [me], markers: markers) == me)
        let removed = AptRunMarker.removeStale(directory: dir)
        #expect(removed == ["apt-run-3000", "apt-run-77"])
        #expect(AptRunMarker.readMarkers(directory: dir).keys.sorted() == [AptRunMarker.fileName(for: me)])
    }

    @Test func decidesInstallsFromDebs() async throws {
        let inspector = AptHookFakeInspector(
            debs: [
                "/root/maas-region-controller_3.5.0_amd64.deb": DebControl(package: "maas-region-controller", version: "1:3.5.0-1", architecture: "amd64"),
                "/root/maas-cli_3.5.0_all.deb": DebControl(package: "maas-cli", version: "1:3.5.0-1", architecture: "all"),
                "/tmp/vim.deb": DebControl(package: "vim", version: "2:9.1", architecture: "amd64"),
                "/root/old.deb": DebControl(package: "maas-region-controller", version: "1:3.3.0-1", architecture: "amd64"),
                "/root/same.deb": DebControl(package: "maas-region-controller", version: "1:3.4.0-1", architecture: "amd64"),
            ],
            db: [aptHookRegion34])

        var d = try await DpkgHookPlanner.decide(aptHookDpkgContext("install", ["-i", "maas-region-controller_3.5.0_amd64.deb", "maas-cli_3.5.0_all.deb", "/tmp/vim.deb"]), inspector: inspector)
        #expect(d.backupNeeded)
        #expect(d.reason == "pre-upgrade maas-region-controller 1:3.4.0-1 -> 1:3.5.0-1")
        #expect(d.packages.map(\.kind) == [.upgrade, .install])
        #expect(d.packages.map(\.archivePath) == ["/root/maas-region-controller_3.5.0_amd64.deb", "/root/maas-cli_3.5.0_all.deb"])

        d = try await DpkgHookPlanner.decide(aptHookDpkgContext("unpack", ["--unpack", "old.deb"]), inspector: inspector)
        #expect(d.backupNeeded && d.packages.first?.kind == .downgrade)

        d = try await DpkgHookPlanner.decide(aptHookDpkgContext("install", ["-i", "same.deb"]), inspector: inspector)
        #expect(!d.backupNeeded && d.packages.first?.kind == .reinstall)

        // Only a fresh install: nothing to lose.
        d = try await DpkgHookPlanner.decide(aptHookDpkgContext("install", ["-i", "maas-cli_3.5.0_all.deb"]), inspector: inspector)
        #expect(!d.backupNeeded && d.packages.first?.kind == .install)

        // An unreadable file is left to dpkg, with a warning.
        d = try await DpkgHookPlanner.decide(aptHookDpkgContext("install", ["-i", "missing.deb"]), inspector: inspector)
        #expect(!d.backupNeeded && d.warnings.count == 1 && d.warnings[0].contains("/root/missing.deb"))

        // Skips: apt already handled it, another root, --no-act, an action that changes no version.
        d = try await DpkgHookPlanner.decide(aptHookDpkgContext("install", ["-i", "old.deb"], apt: aptHookAptEntry), inspector: inspector)
        #expect(!d.backupNeeded && d.explanation.contains("apt (pid 3000)"))
        d = try await DpkgHookPlanner.decide(aptHookDpkgContext("install", ["--root=/srv/x", "-i", "old.deb"], root: "/srv/x"), inspector: inspector)
        #expect(!d.backupNeeded && d.explanation.contains("another root"))
        d = try await DpkgHookPlanner.decide(aptHookDpkgContext("install", ["--no-act", "-i", "old.deb"]), inspector: inspector)
        #expect(!d.backupNeeded && d.explanation.contains("--no-act"))
        d = try await DpkgHookPlanner.decide(aptHookDpkgContext("configure", ["--configure", "-a"]), inspector: inspector)
        #expect(!d.backupNeeded)
    }

    @Test func decidesRemovals() async throws {
        let inspector = AptHookFakeInspector(db: [
            aptHookRegion34,
            InstalledPackage(name: "maas-cli", architecture: "all", version: "1:3.4.0-1", want: "deinstall", status: "config-files"),
            InstalledPackage(name: "maas-common", architecture: "all", version: "1:3.4.0-1", want: "purge", status: "installed"),
            InstalledPackage(name: "vim", architecture: "amd64", version: "2:9.0", want: "deinstall", status: "installed"),
        ])
        var d = try await DpkgHookPlanner.decide(aptHookDpkgContext("remove", ["-r", "maas-region-controller", "vim"]), inspector: inspector)
        #expect(d.reason == "pre-upgrade maas-region-controller 1:3.4.0-1 -> removed")

        // Removing a package that only has configuration files left changes nothing ...
        d = try await DpkgHookPlanner.decide(aptHookDpkgContext("remove", ["-r", "maas-cli"]), inspector: inspector)
        #expect(!d.backupNeeded)
        // ... purging it deletes them.
        d = try await DpkgHookPlanner.decide(aptHookDpkgContext("purge", ["-P", "maas-cli"]), inspector: inspector)
        #expect(d.reason == "pre-upgrade maas-cli 1:3.4.0-1 -> purged")

        d = try await DpkgHookPlanner.decide(aptHookDpkgContext("remove", ["-r", "maas-region-controller:arm64"]), inspector: inspector)
        #expect(!d.backupNeeded)

        // --pending: the packages selected for removal.
        d = try await DpkgHookPlanner.decide(aptHookDpkgContext("remove", ["--remove", "--pending"]), inspector: inspector)
        #expect(d.reason == "pre-upgrade maas-common 1:3.4.0-1 -> removed")
        d = try await DpkgHookPlanner.decide(aptHookDpkgContext("purge", ["--purge", "-a"]), inspector: inspector)
        #expect(d.reason == "pre-upgrade maas-common 1:3.4.0-1 -> purged")
    }

    @Test func recursiveInstallFindsDebs() throws {
        let dir = NSTemporaryDirectory() + "debs-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/sub", withIntermediateDirectories: true)
        for f in ["b.deb", "sub/a.deb", "notes.txt"] { FileManager.default.createFile(atPath: dir + "/" + f, contents: Data()) }
        let paths = DpkgHookPlanner.archivePaths(DpkgInvocation.parse(arguments: ["-R", "-i", dir]), cwd: "/")
        #expect(paths == [dir + "/b.deb", dir + "/sub/a.deb"])
        #expect(DpkgHookPlanner.archivePaths(DpkgInvocation.parse(arguments: ["-i", "x.deb", "/abs.deb"]), cwd: "/work/") == ["/work/x.deb", "/abs.deb"])
    }

    @Test func debianVersionOrderMatchesDpkg() async throws {
        let table: [(String, String, Int)] = [
            ("1.0", "1.0.1", -1), ("1:0.1", "2.0", 1), ("1.0~rc1", "1.0", -1), ("1.0", "1.00", 0), ("0:1.0", "1.0", 0),
            ("1.0-1", "1.0-1.1", -1), ("2.0a", "2.0", 1), ("1.0+b1", "1.0", 1), ("1.0~~", "1.0~", -1), ("a", "B", 1),
            ("1:3.4.0-14321-g.abc-0ubuntu1~22.04.1", "1:3.5.0-15000-g.def-0ubuntu1~22.04.1", -1),
        ]
        for (a, b, want) in table {
            let got = DebianVersion.compare(DebianVersion(a), DebianVersion(b)).signum()
            #expect(got == want, "\(a) vs \(b)")
        }
        // Cross-check random versions against dpkg itself.
        guard let dpkg = Command.find("dpkg") else { return }
        var rng = SplitMix64(seed: 9)
        let parts = ["0", "1", "01", "9", "10", "a", "b", "~", "~~", "+", ".", "-", "~rc1", "+deb12u1", "ubuntu", ":"]
        var compared = 0
        for _ in 0..<60 {
            func version() -> String {
                var v = ["1", "2", "10"].randomElement(using: &rng)!
                for _ in 0..<Int.random(in: 0...5, using: &rng) { v += parts.randomElement(using: &rng)! }
                if v.contains(":") { v = v.replacingOccurrences(of: ":", with: "") }
                if Bool.random(using: &rng) { v = "\(Int.random(in: 0...2, using: &rng)):" + v }
                return v.hasSuffix("-") ? v + "1" : v
            }
            let a = version(), b = version()
            let lt = try await Command.run(dpkg, ["--compare-versions", a, "lt", b])
            let eq = try await Command.run(dpkg, ["--compare-versions", a, "eq", b])
            guard lt.stderr.isEmpty && eq.stderr.isEmpty else { continue } // a version dpkg warns about
            let want = lt.succeeded ? -1 : (eq.succeeded ? 0 : 1)
            #expect(DebianVersion.compare(DebianVersion(a), DebianVersion(b)).signum() == want, "\(a) vs \(b)")
            compared += 1
        }
        #expect(compared > 30)
    }

    @Test func realDpkgDebAndQuery() async throws {
        guard let dpkgDeb = Command.find("dpkg-deb"), Command.find("dpkg-query") != nil else {
            Issue.record("dpkg-deb and dpkg-query are part of every Debian system")
            return
        }
        let dir = NSTemporaryDirectory() + "realdeb-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/pkg/DEBIAN", withIntermediateDirectories: true)
        try """
        Package: maas-region-controller
        Version: 1:3.5.0-1
        Architecture: all
        Maintainer: Test <test@example.com>
        Description: stand-in

        """.write(toFile: dir + "/pkg/DEBIAN/control", atomically: true, encoding: .utf8)
        let built = try await Command.run(dpkgDeb, ["--root-owner-group", "--build", dir + "/pkg", dir + "/m.deb"])
        #expect(built.succeeded, "\(built.stderr)")

        let tools = DpkgTools()
        let control = try await tools.control(ofArchive: dir + "/m.deb")
        #expect(control == DebControl(package: "maas-region-controller", version: "1:3.5.0-1", architecture: "all"))
        await #expect(throws: BackupError.self) { try await tools.control(ofArchive: dir + "/pkg/DEBIAN/control") }

        let dpkgItself = try await tools.instances(of: "dpkg")
        #expect(dpkgItself.count == 1 && dpkgItself[0].status == "installed" && dpkgItself[0].isPresent)
        #expect(try await tools.instances(of: "no-such-package-here").isEmpty)
        #expect(try await tools.allPackages().contains { $0.name == "dpkg" })

        // The whole path with real tools: this host has no MAAS, so installing it needs no backup.
        let d = try await DpkgHookPlanner.decide(aptHookDpkgContext("install", ["-i", "m.deb"], cwd: dir), inspector: tools)
        #expect(!d.backupNeeded && d.packages == [PackageChange(name: "maas-region-controller", architecture: "all",
                                                                oldVersion: nil, newVersion: "1:3.5.0-1", kind: .install,
                                                                archivePath: dir + "/m.deb")])
    }
}
