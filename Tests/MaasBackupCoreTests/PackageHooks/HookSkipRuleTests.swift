import Foundation
import TestSupport
import Testing

/// The package hooks' skip switch (README "Upgrades"): MAAS_SNAPSHOT_BACKUP_SKIP=1 (also yes/true, any
/// case) lets one package change go on without a backup, and nothing else does (MAAS_SNAPSHOT_BACKUP_HOOK=skip,
/// a spelling of builds that never shipped, is gone). The rule lives in the command line, so it is checked on the
/// built binary, with a config file that does not exist: a hook that skips never reads it (exit 0),
/// one that does not skip stops on it (exit 78) before any backup could start (dpkg-hook, which decides
/// from dpkg's arguments before it reads the config, stops with 64 when not run by dpkg).
@Suite("package hooks: the skip switch")
struct HookSkipRuleTests {
    static var binary: String? { ToolBinary.path }

    struct Run { var status: Int32; var stderr: String }

    static func hook(_ name: String, _ env: [String: String]) throws -> Run {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try #require(binary, "build the tool first: swift build"))
        p.arguments = [name, "--config", "/nonexistent/maas-snapshot-backup-test/config.yaml"]
        var e = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("MAAS_SNAPSHOT_BACKUP_") }
        e.removeValue(forKey: "APT_HOOK_INFO_FD")
        for (k, v) in env { e[k] = v }
        p.environment = e
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let data = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Run(status: p.terminationStatus, stderr: String(decoding: data, as: UTF8.self))
    }

    static let skips: [[String: String]] = [
        ["MAAS_SNAPSHOT_BACKUP_SKIP": "1"], ["MAAS_SNAPSHOT_BACKUP_SKIP": "yes"], ["MAAS_SNAPSHOT_BACKUP_SKIP": "true"],
        ["MAAS_SNAPSHOT_BACKUP_SKIP": "TRUE"], ["MAAS_SNAPSHOT_BACKUP_SKIP": "Yes"],
    ]
    static let noSkips: [[String: String]] = [
        [:], ["MAAS_SNAPSHOT_BACKUP_SKIP": "0"], ["MAAS_SNAPSHOT_BACKUP_SKIP": ""], ["MAAS_SNAPSHOT_BACKUP_SKIP": "no"],
        ["MAAS_SNAPSHOT_BACKUP_SKIP": "false"], ["MAAS_SNAPSHOT_BACKUP_SKIP": "2"], ["MAAS_SNAPSHOT_BACKUP_SKIP": " 1"],
        ["MAAS_SNAPSHOT_BACKUP_HOOK": "skip"], ["MAAS_SNAPSHOT_BACKUP_SKIP": "0", "MAAS_SNAPSHOT_BACKUP_HOOK": "skip"],
        ["MAAS_SNAPSHOT_BACKUP_HOOK": "SKIP"], ["MAAS_SNAPSHOT_BACKUP_HOOK": "1"], ["MAAS_SNAPSHOT_BACKUP_HOOK": ""],
        ["MAAS_SNAPSHOT_BACKUP_SKIPPED": "1"],
    ]

    @Test("apt-hook and dpkg-hook skip without reading anything", .enabled(if: HookSkipRuleTests.binary != nil), arguments: skips)
    func skipped(_ env: [String: String]) throws {
        let apt = try Self.hook("apt-hook", env)
        #expect(apt.status == 0, "\(env): \(apt.stderr)")
        #expect(!apt.stderr.contains("does not exist"), "\(env): the config was read: \(apt.stderr)")
        let dpkg = try Self.hook("dpkg-hook", env)
        #expect(dpkg.status == 0 && !dpkg.stderr.contains("does not exist"), "\(env): \(dpkg.stderr)")
    }

    @Test("anything else does not skip: apt-hook without its input reads its config (here: missing, exit 78) and says how to skip; dpkg-hook outside dpkg says so (64)",
          .enabled(if: HookSkipRuleTests.binary != nil), arguments: noSkips)
    func notSkipped(_ env: [String: String]) throws {
        let r = try Self.hook("apt-hook", env)
        #expect(r.status == 78, "apt-hook \(env): \(r.stderr)")
        #expect(r.stderr.contains("does not exist") && r.stderr.contains("MAAS_SNAPSHOT_BACKUP_SKIP=1"), "apt-hook \(env): \(r.stderr)")
        let d = try Self.hook("dpkg-hook", env)
        #expect(d.status == 64 && d.stderr.contains("DPKG_HOOK_ACTION"), "dpkg-hook \(env): \(d.stderr)")
    }
}
