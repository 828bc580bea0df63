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
