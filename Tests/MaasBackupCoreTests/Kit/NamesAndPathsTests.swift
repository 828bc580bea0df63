import Foundation
import TestSupport
import Testing
import MaasBackupCore

/// /proc/self/mountinfo's escapes, the mount lookup, `isUnder`, byte counts for people, and the
/// archive names (README "Archives").
@Suite("mountinfo, paths, sizes and archive names")
struct NamesAndPathsTests {
    // MARK: - mountinfo

    @Test("mountinfo's octal escapes (space, tab, newline, backslash) become the bytes they stand for",
          arguments: [
              (#"/srv/maas\040data"#, "/srv/maas data"),
              (#"/a\011b"#, "/a\tb"),
              (#"/a\012b"#, "/a\nb"),
              (#"/back\134slash"#, #"/back\slash"#),
              (#"\040\040"#, "  "),
              (#"/caf\303\251"#, "/café"),          // UTF-8 bytes escaped one by one
              ("/plain/path", "/plain/path"),
              ("", ""),
          ])
    func unescape(_ raw: String, _ expected: String) {
        #expect(FileSystem.unescape(raw) == expected)
    }

    @Test("what is not a three-digit octal escape stays as it is",
          arguments: [#"/a\x"#, #"/a\04"#, #"/a\"#, #"/a\999"#, #"/a\400"#, #"/a\0"#, #"\"#])
    func notEscapes(_ raw: String) {
        #expect(FileSystem.unescape(raw) == raw)
    }

    @Test("the mount holding a path is the longest mount point that is a prefix of it, by whole names")
    func mountHolding() throws {
        let proc = try #require(FileSystem.mount(holding: "/proc/self/status"))
        #expect(proc.mountPoint == "/proc" && proc.fsType == "proc")
        #expect(FileSystem.mount(holding: "/proc")?.mountPoint == "/proc")
        #expect(FileSystem.mount(holding: "/proc/../proc/self")?.mountPoint == "/proc", "the path is standardized first")
        // "/procfoo" is not below "/proc".
        let other = try #require(FileSystem.mount(holding: "/procfoo/x"))
        #expect(other.mountPoint != "/proc")
        #expect(FileSystem.mount(holding: "/")?.mountPoint == "/")
        // Every mount point holds itself (or a mount stacked on the same point).
        for m in FileSystem.mounts() where !m.mountPoint.contains("\n") {
            #expect(FileSystem.mount(holding: m.mountPoint)?.mountPoint == m.mountPoint)
        }
    }

    // MARK: - isUnder

    @Test("isUnder: the folder itself and what is below it, never a sibling that shares a prefix")
    func under() {
        #expect(isUnder("/var/lib/maas", "/var/lib/maas"))
        #expect(isUnder("/var/lib/maas/boot-resources", "/var/lib/maas"))
        #expect(!isUnder("/var/lib/maas-old", "/var/lib/maas"))
        #expect(!isUnder("/var/lib", "/var/lib/maas"))
        #expect(isUnder("/anything", "/") && isUnder("/", "/"))
        #expect(!isUnder("relative/x", "/"))
    }

    // MARK: - formatBytes

    static let humanCases: [(Int64, String)] = [
        (0, "0 B"), (1, "1 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"),
        (10 << 20, "10.0 MiB"), ((5 << 30) + (512 << 20), "5.5 GiB"), (3 << 40, "3.0 TiB"),
        (2048 << 40, "2048.0 TiB"),      // no unit above TiB
    ]

    @Test("byte counts for people: exact below 1 KiB, one decimal in binary units above",
          arguments: humanCases)
    func human(_ n: Int64, _ text: String) {
        #expect(Human.bytes(n) == text)
    }

    // MARK: - Archive names

    static let utc: TimeZone = TimeZone(identifier: "UTC")!

    static func date(_ y: Int, _ mo: Int, _ d: Int, _ h: Int, _ mi: Int, _ s: Int) -> Date {
        var c = DateComponents(year: y, month: mo, day: d, hour: h, minute: mi, second: s)
        c.timeZone = utc
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = utc
        return cal.date(from: c)!
    }

    @Test("maas-backup-<host>-<UTC yyyymmddTHHMMSSZ>.tar.gz, whatever the local time zone")
    func archiveName() {
        let d = Self.date(2026, 1, 2, 3, 4, 5)
        #expect(ArchiveName.make(host: "region-1", date: d) == "maas-backup-region-1-20260102T030405Z.tar.gz")
        #expect(ArchiveName.timestamp(d) == "20260102T030405Z")
        #expect(ArchiveName.iso8601(d) == "2026-01-02T03:04:05Z")
    }

    @Test("only complete archives count: never a .partial, a sidecar, a stamp or another tool's file",
          arguments: [
              ("maas-backup-h-20260102T030405Z.tar.gz", true),
              ("maas-backup-h-20260102T030405Z.tar.gz.partial", false),
              ("maas-backup-h-20260102T030405Z.tar.gz.manifest.json", false),
              ("maas-backup-h-20260102T030405Z.tar.gz.verified", false),
              ("maas-backup-h-20260102T030405Z.debs", false),
              ("other-h-20260102T030405Z.tar.gz", false),
              ("maas-backup-h-20260102T030405Z.tgz", false),
          ])
    func isArchive(_ name: String, _ expected: Bool) {
        #expect(ArchiveName.isArchive(name) == expected)
    }

    @Test("name -> time -> name round trip over many dates and host names with dashes")
    func roundTrip() throws {
        var rng = SplitMix64(seed: 0x4E41_4D45)
        let hosts = ["h", "region-1", "maas-region-controller-a-b", "x1"]
        for _ in 0..<200 {
            // 1970 .. 2100, whole seconds.
            let t = TimeInterval(rng.next() % 4_102_444_800)
            let date = Date(timeIntervalSince1970: t)
            let host = hosts[Int(rng.next() % UInt64(hosts.count))]
            let name = ArchiveName.make(host: host, date: date)
            #expect(ArchiveName.isArchive(name))
            let iso = try #require(Catalog.nameTime(name), "\(name)")
            #expect(iso == ArchiveName.iso8601(date))
            #expect(Catalog.parseTime(iso) == t)
        }
    }

    @Test("a name without a readable time has none (the catalogue then sorts it as the oldest)",
          arguments: ["maas-backup-h-garbage.tar.gz", "maas-backup-h-20261302T030405Z.tar.gz",
                      "maas-backup-h-20260102T030405Z.tar.gz.partial", "maas-backup-20260102T030405Z"])
    func unreadableNameTimes(_ name: String) {
        #expect(Catalog.nameTime(name) == nil)
    }

    @Test("the .debs folder of an archive")
    func debsFolder() {
        #expect(Catalog.debsFolder("/b/maas-backup-h-20260102T030405Z.tar.gz") == "/b/maas-backup-h-20260102T030405Z.debs")
    }
}
