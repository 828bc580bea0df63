import Foundation
import Testing
import MaasBackupCore

/// BackupSet: the names of a backup's files in the destination and the kinds of reason.
@Suite struct BackupSetTests {
    @Test("a backup's files are named from its archive as they are on disk")
    func fileNames() {
        let f = BackupFiles(destination: "/b", name: "maas-backup-h-20260102T030405Z.tar.gz")
        #expect(f.archive == "/b/maas-backup-h-20260102T030405Z.tar.gz")
        #expect(f.partial == "/b/maas-backup-h-20260102T030405Z.tar.gz.partial")
        #expect(f.sidecar == "/b/maas-backup-h-20260102T030405Z.tar.gz.manifest.json")
        #expect(f.verifiedStamp == "/b/maas-backup-h-20260102T030405Z.tar.gz.verified")
        #expect(f.debs == "/b/maas-backup-h-20260102T030405Z.debs")
        #expect(f.sidecar.hasSuffix(ArchiveName.manifestSuffix) && f.partial.hasSuffix(ArchiveName.partialSuffix))
        #expect(Catalog.debsFolder(f.archive) == f.debs)
    }

    @Test("only maas-backup-….tar.gz.partial names are partial archives")
    func partialNames() {
        #expect(BackupFiles.isPartial("maas-backup-h-20260102T030405Z.tar.gz.partial"))
        #expect(!BackupFiles.isPartial("maas-backup-h-20260102T030405Z.tar.gz"))
        #expect(!BackupFiles.isPartial("other-20260102T030405Z.tar.gz.partial"))
        #expect(!BackupFiles.isPartial("maas-backup-h-20260102T030405Z.tar.gz.partial.bak"))
    }

    @Test("reasons: the raw values are the texts written today; a recorded text is classified by its start")
    func reasons() throws {
        #expect(BackupReason.allCases.map(\.rawValue) == ["manual", "scheduled", "pre-upgrade"])
        #expect(HookDecision.reasonPrefix == BackupReason.preUpgrade.rawValue)
        #expect(BackupReason(recorded: "pre-upgrade maas-region-controller 1:3.4.0-1 -> 1:3.5.0-1") == .preUpgrade)
        #expect(BackupReason(recorded: "scheduled") == .scheduled)
        #expect(BackupReason(recorded: "manual") == .manual)
        #expect(BackupReason(recorded: "before the switch upgrade") == .manual)
        #expect(BackupReason(recorded: "Pre-upgrade by hand") == .manual)
        let decoded = try JSONDecoder().decode([BackupReason].self, from: Data(#"["manual","scheduled","pre-upgrade"]"#.utf8))
        #expect(decoded == [.manual, .scheduled, .preUpgrade])
    }
}
