import Foundation
import Testing
import TestSupport
@testable import MaasBackupCore

/// The package step of a rollback: MAAS packages the backup did not have are removed (conffiles
/// kept) before the backup's versions go back (README "Rollback").
@Suite("rollback package plan")
struct RollbackPackagePlanTests {
    static let packaging = (RepoRoot.of(#filePath) as NSString).deletingLastPathComponent + "/shared/fixtures/maas-packaging"

    /// The binary packages of MAAS's debian/control for `version`, or nil when the fixture is absent.
    static func packages(_ version: String) -> [String]? {
        guard let text = try? String(contentsOfFile: "\(packaging)/\(version)/debian/control", encoding: .utf8) else { return nil }
        return text.split(separator: "\n").filter { $0.hasPrefix("Package:") }.map { $0.dropFirst(8).trimmingCharacters(in: .whitespaces) }
    }

    func reinstall(_ pkg: String, _ version: String) -> PackageReinstall {
        PackageReinstall(package: pkg, backupVersion: version, installedVersion: "1:3.5.13-0ubuntu1", deb: "/b/debs/\(pkg)_\(version)_amd64.deb", sha256: "00")
    }

    @Test("3.5 → 3.4: maas-agent (not in the 3.4 backup) is removed with dpkg --remove before dpkg -i of the saved .debs")
    func agentRemovedFirst() throws {
        guard let new = Self.packages("3.5.13"), let old = Self.packages("3.4.10") else {
            print("note: ../shared/fixtures/maas-packaging is absent; skipped"); return
        }
        let installed = Dictionary(uniqueKeysWithValues: new.map { ($0, "1:3.5.13-0ubuntu1") })
        let backup = Dictionary(uniqueKeysWithValues: old.map { ($0, "1:3.4.10-0ubuntu1") })
        let remove = RollbackPipeline.notInBackup(installed: installed, backup: backup)
        #expect(remove == ["maas-agent"])
        let changes = old.sorted().map { reinstall($0, "1:3.4.10-0ubuntu1") }
        let step = RollbackPipeline.commands(dpkg: "/usr/bin/dpkg", changes: changes, remove: remove)
        #expect(step.removeCommand == ["/usr/bin/dpkg", "--force-depends", "--remove", "maas-agent"])
        #expect(!step.removeCommand.contains("--purge"), "the conffiles must stay")
        #expect(step.command.prefix(4) == ["/usr/bin/dpkg", "--force-confdef", "--force-confold", "-i"])
        #expect(step.command.count == 4 + old.count)
        #expect(!step.command.contains { $0.contains("maas-agent") })
    }

    @Test("3.6 → 3.5 and same-version rollbacks remove nothing; this tool's own package is never removed")
    func nothingToRemove() throws {
        if let new = Self.packages("3.6.5"), let old = Self.packages("3.5.13") {
            let installed = Dictionary(uniqueKeysWithValues: new.map { ($0, "1:3.6.5") })
            let backup = Dictionary(uniqueKeysWithValues: old.map { ($0, "1:3.5.13") })
            #expect(RollbackPipeline.notInBackup(installed: installed, backup: backup) == [])
        } else {
            print("note: ../shared/fixtures/maas-packaging is absent; the 3.6 → 3.5 case is skipped")
        }
        let installed = ["maas-common": "1", "maas-snapshot-backup": "2", "maas-region-api": "1"]
        #expect(RollbackPipeline.notInBackup(installed: installed, backup: ["maas-common": "1", "maas-region-api": "1"]) == [])
        let step = RollbackPipeline.commands(dpkg: "/usr/bin/dpkg", changes: [], remove: [])
        #expect(step.removeCommand.isEmpty && step.command.isEmpty)
    }

    /// The Pre-Depends of `pkg` in MAAS's debian/control for `version` (${binary:Version} as "=").
    static func preDepends(_ pkg: String, _ version: String) -> [String] {
        guard let text = try? String(contentsOfFile: "\(packaging)/\(version)/debian/control", encoding: .utf8) else { return [] }
        let stanza = text.components(separatedBy: "\n\n").first { $0.contains("Package: \(pkg)\n") } ?? ""
        var field = "", on = false
        for line in stanza.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("Pre-Depends:") { on = true; field += line.dropFirst(12) + " "; continue }
            if on && line.hasPrefix(" ") { field += line + " " } else { on = false }
        }
        return PackageReinstall.names(field).filter { !$0.hasPrefix("$") }
    }

    @Test("3.6 → 3.5: maas-common, which maas-agent Pre-Depends on at its own version, goes back first in a dpkg run of its own")
    func preDependedFirst() throws {
        guard let old = Self.packages("3.5.13") else { print("note: ../shared/fixtures/maas-packaging is absent; skipped"); return }
        #expect(Self.preDepends("maas-agent", "3.5.13").contains("maas-common"), "the fixture's maas-agent Pre-Depends on maas-common")
        let changes = old.map { p in
            var c = reinstall(p, "1:3.5.13-0ubuntu1")
            c.preDepends = Self.preDepends(p, "3.5.13")
            return c
        }
        let step = RollbackPipeline.commands(dpkg: "/usr/bin/dpkg", changes: changes, remove: [])
        #expect(step.firstCommand.prefix(2) == ["/usr/bin/dpkg", "--force-depends"], "\(step.firstCommand)")
        #expect(step.firstCommand.filter { $0.hasSuffix(".deb") }.map { ($0 as NSString).lastPathComponent.components(separatedBy: "_")[0] } == ["maas-common"], "\(step.firstCommand)")
        #expect(!step.command.contains { $0.contains("/maas-common_") } && step.command.contains { $0.contains("/maas-agent_") }, "\(step.command)")
        #expect(PackageReinstall.names("maas-common (= 1:3.5.13-0ubuntu1), adduser | passwd:any") == ["maas-common", "adduser", "passwd"])
    }

    @Test("a failed dpkg -i is reported by its causes, not by the last package of dpkg's summary")
    func dpkgErrorsNamed() {
        let stderr = """
            dpkg: warning: downgrading maas-region-controller from 1:3.6.5-0ubuntu1 to 1:3.5.13-0ubuntu1
            Setting up maas-region-controller (1:3.5.13-0ubuntu1) ...
            dbupgrade: migration 0300_x failed
            dpkg: error processing package maas-region-controller (--install):
             installed maas-region-controller package post-installation script subprocess returned error exit status 1
            dpkg: dependency problems prevent configuration of maas:
             maas depends on maas-region-controller (= 1:3.5.13-0ubuntu1); however:
              Package maas-region-controller is not configured yet.

            dpkg: error processing package maas (--install):
             dependency problems - leaving unconfigured
            Errors were encountered while processing:
             maas-region-controller
             maas
            """
        let s = DpkgErrors.summary(stderr)
        #expect(s == "maas-region-controller: installed maas-region-controller package post-installation script subprocess returned error exit status 1; "
                + "maas: maas depends on maas-region-controller (= 1:3.5.13-0ubuntu1); however: Package maas-region-controller is not configured yet.; "
                + "maas: dependency problems - leaving unconfigured", "\(s ?? "nil")")
        #expect(DpkgErrors.summary("dpkg: error: requested operation requires superuser privilege\n") == nil)
    }
}
