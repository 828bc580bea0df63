import Testing
import Foundation
import LibArchive

@Suite("TarWriter.headerBytes")
struct TarHeaderBytesTests {
    static func rssKiB() -> Int {
        let s = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = s.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
    }

    static func header(size: Int64) -> EntryHeader {
        EntryHeader(path: "dump.sql", kind: .file, permissions: 0o600, uid: 0, gid: 0, uname: "root", gname: "root",
                    size: size, mtime: 1_790_000_000, mtimeNanoseconds: 0)
    }

    @Test("only the header: a ustar block, and none of the member's data (freeing the writer writes no zeros into it)")
    func onlyTheHeader() throws {
        let before = Self.rssKiB()
        let bytes = try TarWriter.headerBytes(Self.header(size: 1 << 30))
        #expect(bytes.count == 512)
        #expect(Array(bytes[257..<262]) == Array("ustar".utf8))
        #expect(String(decoding: bytes[0..<8], as: UTF8.self) == "dump.sql")
        // The bug this guards against collected h.size zeros (1 GiB here) in release builds.
        #expect(Self.rssKiB() - before < 64 * 1024, "RSS grew from \(before) to \(Self.rssKiB()) KiB")
    }

    @Test("8 GiB and more: a pax extended header carries the size")
    func bigSize() throws {
        let size: Int64 = 9 << 30
        let bytes = try TarWriter.headerBytes(Self.header(size: size))
        #expect(bytes.count >= 1024 && bytes.count % 512 == 0)
        #expect(String(decoding: bytes, as: UTF8.self).contains("size=\(size)"))
    }
}
