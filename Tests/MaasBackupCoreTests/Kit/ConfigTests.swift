import Foundation
import MaasBackupCore
import Testing

@Suite struct ConfigTests {
    @Test func aMaasRegionIsPresentOnlyWithRegiondConfOrADatabaseInTheConfig() throws {
        let root = NSTemporaryDirectory() + "/msb-region-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root + "/etc/maas", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        #expect(!(try Config.parse(yaml: "root: \(root)\n")).hasMaasRegion, "a client-only host has no region")
        #expect(try Config.parse(yaml: "root: \(root)\ndatabase: {name: maasdb}\n").hasMaasRegion)
        try "database_name: maasdb\n".write(toFile: root + "/etc/maas/regiond.conf", atomically: true, encoding: .utf8)
        #expect(try Config.parse(yaml: "root: \(root)\n").hasMaasRegion)
    }

    @Test func defaultsSuitADebInstalledMaas() throws {
        let c = try Config.parse(yaml: "")
        #expect(c.root == "/")
        #expect(c.destination == "/var/backups/maas-snapshot-backup")
        #expect(c.paths == ["/etc/maas", "/var/lib/maas"])
        #expect(c.exclude == ["/var/lib/maas/boot-resources"])
        #expect(c.services.first == "maas-http" && c.services.contains("maas-regiond") && c.services.last == "maas-syslog")
        #expect(c.snapshot == .auto)
        #expect(c.quiesce == .auto)
        #expect(c.database.scope == .maas)
        #expect(c.copyInWindowMax == 64 << 20)
    }

    @Test func everyKeyParses() throws {
        let c = try Config.parse(yaml: """
            root: /srv/maas
            destination: /backups/
            paths: [/etc/maas]
            exclude: []
            services: [maas-regiond]
            snapshot: btrfs
            quiesce: freeze
            database: {host: /run/postgresql, port: 5433, user: maas, name: maasdb, scope: all, os_user: postgres}
            copy_in_window_max: 1G
            compression_level: 9
            window_timeout: 60
            lvm: {snapshot_size: 10%VG}
            retention: {keep: 3, keep_pre_upgrade: 2, max_age_days: 30}
            hook: {on_failure: warn}
            metrics_textfile: /var/lib/node_exporter/maas.prom
            """)
        #expect(c.root == "/srv/maas")
        #expect(c.destination == "/backups")
        #expect(c.database.port == 5433 && c.database.scope == .all)
        #expect(c.copyInWindowMax == 1 << 30)
        #expect(c.lvm.snapshotSize == "10%VG")
        #expect(c.quiesce == .freeze)
        #expect(try Config.parse(yaml: "quiesce: stop").quiesce == .stop)
        #expect(c.retention.keep == 3 && c.hook.onFailure == .warn)
        #expect(c.live("/etc/maas") == "/srv/maas/etc/maas")
    }

    @Test(arguments: [
        ("colour: red", "unknown key 'colour'"),
        ("snapshot: zfs", "use one of: auto, btrfs, lvm, none"),
        ("quiesce: pause", "use one of: auto, freeze, stop"),
        ("destination: relative/dir", "is not an absolute path"),
        ("compression_level: 11", "from 1 to 9"),
        ("copy_in_window_max: lots", "is not a size"),
        ("database: {scope: some}", "database.scope"),
        ("database: {passwd: x}", "unknown key 'database.passwd'"),
        ("lvm: {snapshot_size: huge}", "lvm.snapshot_size"),
        ("paths: []", "is empty"),
        ("services: ['rm -rf']", "not a systemd unit name"),
        ("root: [/a", "not valid YAML"),
    ])
    func badValuesNameTheKey(yaml: String, expected: String) {
        do {
            _ = try Config.parse(yaml: yaml, source: "test.yaml")
            Issue.record("\(yaml) was accepted")
        } catch let e as BackupError {
            #expect(e.code == .config)
            #expect(e.description.contains(expected), "\(e.description)")
            #expect(!e.description.contains("\n"), "one line")
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test func missingExplicitConfigIsAnError() {
        #expect(throws: BackupError.self) { try Config.load(path: "/nonexistent/config.yaml") }
    }

    @Test func sizes() {
        #expect(parseSize("64M") == 64 << 20)
        #expect(parseSize("2GiB") == 2 << 30)
        #expect(parseSize("100") == 100)
        #expect(parseSize("-1") == nil)
    }
}

@Suite struct ManifestTests {
    @Test func majorMinorFromDebianVersions() {
        #expect(Manifest.majorMinor("1:3.4.0-14321-g.1027c7664-0ubuntu1~22.04.1") == "3.4")
        #expect(Manifest.majorMinor("3.5.2-16329-g.fea4aa5d1-0ubuntu1") == "3.5")
        #expect(Manifest.majorMinor("garbage") == nil)
    }

    @Test func archiveNames() {
        let d = Date(timeIntervalSince1970: 1_795_000_000)
        let n = ArchiveName.make(host: "region1", date: d)
        #expect(n.hasPrefix("maas-backup-region1-2026"))
        #expect(n.hasSuffix("Z.tar.gz"))
        #expect(ArchiveName.isArchive(n))
        #expect(!ArchiveName.isArchive(n + ".partial"))
    }

    @Test func windowsOfOlderManifestsDecodeAsStopped() throws {
        // A manifest written before quiesce existed has neither key: it stopped the services.
        let old = #"{"services_stopped": ["maas-regiond"], "downtime_ms": 5, "steps": []}"#
        let w = try Manifest.decoder().decode(Manifest.Window.self, from: Data(old.utf8))
        #expect(w.quiesce == nil && w.servicesFrozen == nil && w.servicesStopped == ["maas-regiond"])
    }

    @Test func systemdVersions() {
        #expect(Systemctl.systemdVersion("systemd 252 (252.36-1~deb12u1)\n+PAM +AUDIT\n") == 252)
        #expect(Systemctl.systemdVersion("systemd 245 (245.4-4ubuntu3.22)") == 245)
        #expect(Systemctl.systemdVersion("something else") == nil)
    }

    @Test func rejectsOtherFormats() throws {
        let json = #"{"format_version": 99}"#
        #expect(throws: BackupError.self) { try Manifest.decode(Array(json.utf8)) }
    }
}
