import Foundation
import MSBKit

/// After the files are restored (before MAAS starts): the restored MAAS 3.5+ image store against
/// the image rows of the restored database (the manifest's `images`). At start regiond removes
/// the files no row names and drops the sync state of rows whose file is missing, then downloads
/// the synced ones again from its boot sources.
public struct ImageStoreReport: Sendable, Codable, Equatable {
    /// sha256 of the synced files the restored store lacks: MAAS downloads them again.
    public var download: [String]
    public var downloadBytes: Int64
    /// sha256 of uploaded files the restored store lacks (an archive made with `images: none`):
    /// upload those images again.
    public var missingUploaded: [String]
    /// Names in the store that no image row names: regiond's start-up check removes them.
    public var unexpected: [String]
    /// Files whose row and file agree.
    public var present: Int

    static package func make(manifest: Manifest, config: Config) -> ImageStoreReport? {
        guard let images = manifest.images else { return nil }
        let store = config.live(BootImages.storePath)  // not the manifest's `store`: it is not trusted with paths
        let names = Set(((try? FileManager.default.contentsOfDirectory(atPath: store)) ?? []))
        let missing = images.files.filter { !names.contains($0.name) }
        let synced = missing.filter { $0.kind == .synced }
        let known = Set(images.files.map(\.name))
        return ImageStoreReport(download: synced.map(\.sha256), downloadBytes: synced.reduce(0) { $0 + $1.size },
                                missingUploaded: missing.filter { $0.kind == .uploaded }.map(\.sha256),
                                unexpected: names.subtracting(known).sorted(),
                                present: images.files.count - missing.count)
    }

    /// The lines restore logs and prints.
    public var lines: [String] {
        var out = ["\(present) boot image file(s) match the restored image rows"]
        if !download.isEmpty {
            out.append("\(download.count) synced boot image file(s) (\(Human.bytes(downloadBytes))) are not in the archive: MAAS downloads them again from its boot sources")
        }
        if !missingUploaded.isEmpty {
            out.append("\(missingUploaded.count) uploaded boot image file(s) are not in the archive (images: none): upload them again (sha256 \(missingUploaded.joined(separator: ", ")))")
        }
        if !unexpected.isEmpty {
            out.append("\(unexpected.count) file(s) in the image store have no image row: regiond's start-up check removes them: \(unexpected.joined(separator: ", "))")
        }
        return out
    }
}
