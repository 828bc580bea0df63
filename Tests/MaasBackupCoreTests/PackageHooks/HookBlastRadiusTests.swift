import Foundation
import TestSupport
import Testing
@testable import MaasBackupCore

/// The hooks decide from the package list whether a MAAS package changes before they read the
/// config or parse anything else: a non-UTF-8 apt option or a typo in config.yaml never stops
/// `apt install htop` (issue 23). The same broken config still stops a MAAS upgrade.
@Suite("package hooks: the blast radius")
struct HookBlastRadiusTests {
    static var binary: String? { ToolBinary.path }

    static let htop = "htop 3.2.1-1 amd64 none < 3.2.2-1 amd64 none /var/cache/apt/archives/htop_3.2.2-1_amd64.deb"
    static let region = "maas-region-controller 1:3.4.0-1 amd64 none < 1:3.5.0-1 amd64 none /var/cache/apt/archives/m.deb"
    /// An apt option whose value is not UTF-8 once %-unquoted (apt quotes bytes >= 0x7F).
    static let oddOption = "Acquire::Foo=caf%e9"

    struct Run { var status: Int32; var stderr: String }

    /// Runs `apt-hook` on the built tool with `input` on APT_HOOK_INFO_FD (here stdin).
    static func aptHook(_ input: [UInt8], config: String) throws -> Run {
        let dir = NSTemporaryDirectory() + "msb-blast-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let inputPath = dir + "/input"
        try Data(input).write(to: URL(fileURLWithPath: inputPath))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try #require(binary, "build the tool first: swift build"))
        p.arguments = ["apt-hook", "--config", config]
        var e = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("MAAS_SNAPSHOT_BACKUP_") }
        e["APT_HOOK_INFO_FD"] = "0"
        p.environment = e
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        p.standardInput = try #require(FileHandle(forReadingAtPath: inputPath))
        try p.run()
        let data = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Run(status: p.terminationStatus, stderr: String(decoding: data, as: UTF8.self))
    }

    static func config(_ text: String) throws -> (String, String) {
        let dir = NSTemporaryDirectory() + "msb-blast-cfg-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try text.write(toFile: dir + "/config.yaml", atomically: true, encoding: .utf8)
        return (dir, dir + "/config.yaml")
    }

    @Test("a non-UTF-8 apt option with htop: exit 0", .enabled(if: HookBlastRadiusTests.binary != nil))
    func oddOptionDoesNotStopHtop() throws {
        let (dir, cfg) = try Self.config("hook:\n  on_failure: block\n")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try Self.aptHook(aptHookInput([Self.htop], config: ["APT::Architecture=amd64", Self.oddOption]), config: cfg)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!r.stderr.contains("error"), "\(r.stderr)")
    }

    @Test("a typo in config.yaml with htop: exit 0; with a MAAS upgrade: the config error (78)",
          .enabled(if: HookBlastRadiusTests.binary != nil))
    func brokenConfigStopsOnlyMaas() throws {
        let (dir, cfg) = try Self.config("hook:\n  on_failur: block\n")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let htop = try Self.aptHook(aptHookInput([Self.htop]), config: cfg)
        #expect(htop.status == 0, "\(htop.stderr)")
        let maas = try Self.aptHook(aptHookInput([Self.htop, Self.region]), config: cfg)
        #expect(maas.status == ExitCode.config.rawValue, "\(maas.stderr)")
        #expect(maas.stderr.contains("unknown key") && maas.stderr.contains("MAAS_SNAPSHOT_BACKUP_SKIP=1"), "\(maas.stderr)")
        // A missing config file: the same.
        #expect(try Self.aptHook(aptHookInput([Self.htop]), config: dir + "/none.yaml").status == 0)
    }

    @Test("the scan reads only the package names, as bytes")
    func scan() {
        #expect(AptHookInput.namesMaasPackage(bytes: aptHookInput([Self.htop])) == false)
        #expect(AptHookInput.namesMaasPackage(bytes: aptHookInput([Self.htop, Self.region])) == true)
        #expect(AptHookInput.namesMaasPackage(bytes: aptHookInput(["maas-snapshot-backup 1 all none < 2 all none /x.deb"])) == false)
        let raw = Array("VERSION 3\nA=\u{1}".utf8) + [0xFF, 0xFE, 0x0A, 0x0A] + Array((Self.htop + " ").utf8) + [0xFF, 0x0A]
        #expect(AptHookInput.namesMaasPackage(bytes: raw) == false)
        #expect(AptHookInput.namesMaasPackage(bytes: Array("VERSION 3\nA=b\n".utf8)) == nil)
        #expect(AptHookInput.namesMaasPackage(bytes: Array("garbage".utf8)) == nil)
        #expect(AptHookInput.namesMaasPackage(bytes: Array("VERSION 2\n\n".utf8)) == nil, "another version is parsed (and refused) in full")
        #expect(AptHookInput.namesMaasPackage(bytes: Array("VERSION 3\n\n".utf8) + [0xFF, 0x20, 0x0A]) == nil)
    }

    @Test("an apt option that is not UTF-8 does not stop a MAAS upgrade's backup either")
    func oddOptionWithMaas() throws {
        let input = try AptHookInput.parse(bytes: aptHookInput([Self.region], config: ["APT::Architecture=amd64", Self.oddOption]))
        #expect(input.decision.backupNeeded)
        #expect(input.config("Acquire::Foo") == "caf\u{FFFD}")
        #expect(aptHookParseError(Array("VERSION 3\nA=%00\n\n".utf8)) != nil, "a NUL byte is still refused")
    }

    @Test("dpkg hook: a non-MAAS .deb never loads the config; a MAAS one does")
    func dpkgDecidesFirst() async throws {
        let (table, root) = try aptHookFakeProc()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let dir = NSTemporaryDirectory() + "msb-markers-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let loads = AptHookRecorder()
        let broken: PackageHookRunner.LoadPolicy = {
            loads.log(.info, "loaded")
            throw BackupError.config("config.yaml line 2: unknown key 'on_failur'")
        }
        let htop = AptHookFakeInspector(debs: ["/var/tmp/a.deb": DebControl(package: "htop", version: "3.2.2-1", architecture: "amd64")],
                                        db: [aptHookRegion34])
        var rc = await PackageHookRunner.dpkg(environment: ["DPKG_HOOK_ACTION": "unpack"], log: { _, _ in },
                                              markerDirectory: dir, table: table, pid: 500, inspector: htop, policy: broken)
        #expect(rc == 0 && loads.lines.isEmpty)
        let maas = AptHookFakeInspector(
            debs: ["/var/tmp/a.deb": DebControl(package: "maas-region-controller", version: "1:3.5.0-1", architecture: "amd64")],
            db: [aptHookRegion34])
        rc = await PackageHookRunner.dpkg(environment: ["DPKG_HOOK_ACTION": "unpack"], log: { _, _ in },
                                          markerDirectory: dir, table: table, pid: 500, inspector: maas, policy: broken)
        #expect(rc == ExitCode.config.rawValue && loads.lines == ["loaded"])
    }
}
