import Foundation
import Testing
@testable import MaasBackupCore

/// The parts of the region-layout handling that need no database (README "Region layouts").
@Suite("region layout rules")
struct RegionLayoutUnitTests {
    func root(_ files: [String: String]) throws -> Config {
        let dir = NSTemporaryDirectory() + "msb-layout-\(UUID().uuidString)"
        for (path, text) in files {
            let full = dir + path
            try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: full, atomically: true, encoding: .utf8)
        }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var c = Config()
        c.root = dir
        return c
    }

    @Test func emptyRegiondValuesCountAsUnsetAndVaultIsSeen() throws {
        let c = try root(["/etc/maas/regiond.conf": "database_host: localhost\ndatabase_name: ''\ndatabase_user: \"\"\ndatabase_pass:\nvault_url: http://vault:8200\nvault_secret_id: s3cret\n"])
        defer { try? FileManager.default.removeItem(atPath: c.root) }
        let r = try RegionLayout.regiondConf(c)
        #expect(r["database_name"] == nil && r["database_user"] == nil && r["database_pass"] == nil)
        #expect(r["database_host"] == "localhost")
        #expect(RegionLayout.vaultURL(c) == "http://vault:8200")
        #expect(RegionLayout.vaultCredentialsMissing(c) == nil, "a local database needs no credentials from Vault")
    }

    @Test func remoteDatabaseWithCredentialsInVault() throws {
        var c = try root(["/etc/maas/regiond.conf": "database_host: 10.0.0.5\ndatabase_name: ''\ndatabase_user: ''\ndatabase_pass: ''\nvault_url: http://vault:8200\n"])
        defer { try? FileManager.default.removeItem(atPath: c.root) }
        let why = try #require(RegionLayout.vaultCredentialsMissing(c))
        #expect(why.contains("10.0.0.5") && why.contains("Vault"))
        #expect(throws: BackupError.self) { try PostgresTarget.resolve(c) }
        c.database.user = "maas"
        c.database.passwordFile = "/etc/maas-snapshot-backup/db-password"
        #expect(RegionLayout.vaultCredentialsMissing(c) == nil)
    }

    @Test func snapDirectoryWithoutADebRegion() async throws {
        let snap = try root(["/var/snap/maas/current/regiond.conf": "x: y\n"])
        defer { try? FileManager.default.removeItem(atPath: snap.root) }
        #expect(await RegionLayout.snapReason(snap, services: nil) != nil)
        let both = try root(["/var/snap/maas/x": "", "/etc/maas/regiond.conf": "database_host: localhost\n"])
        defer { try? FileManager.default.removeItem(atPath: both.root) }
        #expect(await RegionLayout.snapReason(both, services: nil) == nil)
        #expect(RegionLayout.snapError("x", command: "backup").code == .unavailable)
    }

    @Test func patchLevelChangesNeedDbupgrade() throws {
        #expect(RegionChecks.patchVersion("1:3.6.1-16333-g.1234567-0ubuntu1~22.04.1") == "3.6.1")
        #expect(RegionChecks.patchVersion("3.5.0~rc1-1") == "3.5.0")
        #expect(RegionChecks.patchVersion("3.5") == nil)
        #expect(try RegionChecks.dbUpgradeNeeded(backup: "1:3.6.1-1", installed: "1:3.6.1-2") == nil)
        #expect(try RegionChecks.dbUpgradeNeeded(backup: "1:3.5.1-1", installed: "1:3.6.1-1") == nil, "another minor is the version guard's")
        #expect(try RegionChecks.dbUpgradeNeeded(backup: nil, installed: "1:3.6.1-1") == nil)
    }

    @Test func clientHintNamesTheServersMajor() {
        let h = PostgresAdapter.clientPackageHint(major: 16)
        #expect(h.contains("postgresql-client-16") && h.contains("apt.postgresql.org") && h.contains("database.bin_dir"))
    }

    @Test func defaultServicesInOrder() {
        #expect(Config.defaultServices == ["maas-http", "maas-regiond", "maas-rackd", "maas-dhcpd", "maas-dhcpd6", "maas-apiserver",
                                           "maas-temporal", "maas-temporal-worker", "maas-agent", "maas-proxy", "maas-syslog"])
    }
}
