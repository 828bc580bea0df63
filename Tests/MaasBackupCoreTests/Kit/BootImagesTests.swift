import Foundation
import MaasBackupCore
import Testing

/// The pure half of issue 24: which image files a backup leaves out, the config key, the manifest.
@Suite struct BootImagesTests {
    let rows = [
        BootImageRow(name: "aaa", sha256: "aaa", size: 10, kept: false),   // synced only
        BootImageRow(name: "bbb", sha256: "bbb", size: 20, kept: true),    // uploaded
        BootImageRow(name: "ccc", sha256: "ccc", size: 30, kept: false),   // shared: synced...
        BootImageRow(name: "ccc", sha256: "ccc", size: 30, kept: true),    // ...and uploaded
    ]

    @Test func aFileSharedWithAnUploadedResourceIsUploaded() {
        let files = BootImages.files(from: rows)
        #expect(files.map(\.name) == ["aaa", "bbb", "ccc"])
        #expect(files.map(\.kind) == [.synced, .uploaded, .uploaded])
        #expect(BootImages.leftOut(files, mode: .uploaded) == ["aaa"])
        #expect(BootImages.leftOut(files, mode: .all).isEmpty)
        #expect(BootImages.leftOut(files, mode: .none) == ["aaa", "bbb", "ccc"])
    }

    @Test func theImagesKeyTakesUploadedAllOrNone() throws {
        #expect(try Config.parse(yaml: "root: /\n").images == .uploaded)
        #expect(try Config.parse(yaml: "images: all\n").images == .all)
        #expect(try Config.parse(yaml: "images: none\n").images == .none)
        #expect(throws: BackupError.self) { try Config.parse(yaml: "images: synced\n") }
    }

    @Test func manifestsWithoutImagesStillDecode() throws {
        let m = BootImages(mode: "uploaded", files: BootImages.files(from: rows))
        let bytes = try Manifest.encoder().encode(m)
        let back = try Manifest.decoder().decode(BootImages.self, from: bytes)
        #expect(back == m)
        #expect(String(decoding: bytes, as: UTF8.self).contains("\"archived\""))
        struct Holder: Codable { var images: BootImages? }
        #expect(try Manifest.decoder().decode(Holder.self, from: Data("{}".utf8)).images == nil)
    }
}

/// A rollback to a 3.4 backup leaves the 3.5 image store in the folder it moved aside: prune
/// removes that store (only) once older than max_age_days.
@Suite struct LeftoverImageStoreTests {
    @Test func pruneRemovesOldLeftoverStoresOnly() throws {
        let dir = "/tmp/msb-leftover-\(UUID().uuidString.prefix(6))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let maas = dir + "/root/var/lib/maas"
        let old = ArchiveName.timestamp(Date().addingTimeInterval(-40 * 86400))
        let recent = ArchiveName.timestamp(Date().addingTimeInterval(-2 * 86400))
        let oldStore = maas + ".pre-restore-" + old + "/image-storage"
        let oldInside = maas + "/.maas-snapshot-backup/pre-restore-" + old + "-1/image-storage"
        let recentStore = maas + ".pre-restore-" + recent + "/image-storage"
        for s in [oldStore, oldInside, recentStore] {
            try FileManager.default.createDirectory(atPath: s, withIntermediateDirectories: true)
            try Data(repeating: 7, count: 1000).write(to: URL(fileURLWithPath: s + "/abc"))
            try Data("secret".utf8).write(to: URL(fileURLWithPath: (s as NSString).deletingLastPathComponent + "/secret"))
        }
        try FileManager.default.createDirectory(atPath: dir + "/backups", withIntermediateDirectories: true)
        let config = try Config.parse(yaml: """
            root: \(dir)/root
            destination: \(dir)/backups
            lock_file: \(dir)/lock
            state_dir: \(dir)/state
            retention: {max_age_days: 30}
            """)
        let dry = try Prune.run(config: config, dryRun: true)
        #expect(Set(dry.removedImageStores?.map(\.path) ?? []) == [oldStore, oldInside])
        #expect(FileManager.default.fileExists(atPath: oldStore + "/abc"), "a dry run removes nothing")

        let r = try Prune.run(config: config, dryRun: false)
        #expect(Set(r.removedImageStores?.map(\.path) ?? []) == [oldStore, oldInside])
        #expect(r.removedImageStores?.first?.sizeBytes == 1000)
        #expect(!FileManager.default.fileExists(atPath: oldStore) && !FileManager.default.fileExists(atPath: oldInside))
        #expect(FileManager.default.fileExists(atPath: recentStore + "/abc"), "a store younger than max_age_days stays")
        #expect(FileManager.default.fileExists(atPath: (oldStore as NSString).deletingLastPathComponent + "/secret"), "the rest of the folder stays")

        var never = config
        never.retention.maxAgeDays = 0
        #expect(try Prune.run(config: never, dryRun: false).removedImageStores == nil)
        #expect(FileManager.default.fileExists(atPath: recentStore))
    }
}
