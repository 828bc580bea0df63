import Foundation
import Testing
import MaasBackupCore

/// The LVM driver's pure parts: the `lvs --reportformat json` report and the `lvm.snapshot_size`
/// arithmetic (README "LVM"). No LVM needed.
@Suite("LVM report and snapshot sizes")
struct LVMSizeTests {
    static let mib: Int64 = 1 << 20
    static let gib: Int64 = 1 << 30

    /// One `lv` object as lvs prints it: every value a string.
    static func lvJSON(name: String = "root", vg: String = "vg0", attr: String = "-wi-ao----", size: String = "10737418240",
                       pool: String = "", major: String = "253", minor: String = "1", data: String = "", meta: String = "",
                       invalid: String = "", vgFree: String = "4294967296", vgSize: String = "21474836480",
                       extent: String = "4194304") -> String {
        """
        {"lv_name":"\(name)", "vg_name":"\(vg)", "lv_attr":"\(attr)", "lv_size":"\(size)", "pool_lv":"\(pool)",
         "lv_kernel_major":"\(major)", "lv_kernel_minor":"\(minor)", "data_percent":"\(data)", "metadata_percent":"\(meta)",
         "lv_snapshot_invalid":"\(invalid)", "vg_free":"\(vgFree)", "vg_size":"\(vgSize)", "vg_extent_size":"\(extent)"}
        """
    }

    static func report(_ lvs: [String]) -> String {
        #"{"report": [ {"lv": ["# + lvs.joined(separator: ",\n") + "]} ]}"
    }

    /// An origin LV of `size` bytes in a VG of `vgSize` bytes with `vgFree` free, 4 MiB extents.
    static func origin(size: Int64, vgSize: Int64 = 100 << 30, vgFree: Int64 = 50 << 30, extent: Int64 = 4 << 20) throws -> LVInfo {
        try #require(try LVInfo.parseReport(report([lvJSON(size: String(size), vgFree: String(vgFree), vgSize: String(vgSize),
                                                               extent: String(extent))])).first)
    }

    // MARK: - The report

    @Test("lvs's JSON is found among the warnings LVM prints around it; every field is read")
    func reportWithWarnings() throws {
        let text = "  WARNING: Not using device /dev/sdb for PV abc.\n"
            + Self.report([Self.lvJSON(), Self.lvJSON(name: "data", vg: "vg1", attr: "Vwi-aotz--", size: "2147483648", pool: "pool0",
                                       major: "", minor: "", data: "12.50", meta: "3.00", invalid: "1")])
            + "\n  WARNING: another one\n"
        let lvs = try LVInfo.parseReport(text)
        #expect(lvs.count == 2)
        let root = lvs[0]
        #expect(root.identity == "vg0/root")
        #expect(root.sizeBytes == 10 * Self.gib && root.vgFreeBytes == 4 * Self.gib && root.vgSizeBytes == 20 * Self.gib)
        #expect(root.extentBytes == 4 * Self.mib)
        #expect(root.kernelMajor == 253 && root.kernelMinor == 1)
        #expect(!root.isThin && root.dataPercent == nil && root.metadataPercent == nil && !root.snapshotInvalid,
                "empty strings mean: LVM reports no value")
        let thin = lvs[1]
        #expect(thin.identity == "vg1/data" && thin.isThin && thin.pool == "pool0")
        #expect(thin.dataPercent == 12.5 && thin.metadataPercent == 3.0 && thin.snapshotInvalid)
        #expect(thin.kernelMajor == -1 && thin.kernelMinor == -1, "an inactive LV has no kernel numbers")
    }

    @Test("several report sections (one per volume group) are joined")
    func severalSections() throws {
        let text = #"{"report": [ {"lv": ["# + Self.lvJSON(name: "a") + #"]}, {"lv": ["# + Self.lvJSON(name: "b", vg: "vg9") + "]} ]}"
        #expect(try LVInfo.parseReport(text).map(\.identity) == ["vg0/a", "vg9/b"])
    }

    @Test("no JSON, broken JSON, or a size that is not a number: an error that says so, never a zero")
    func badReports() {
        #expect(throws: BackupError.self) { try LVInfo.parseReport("  No volume groups found\n") }
        #expect(throws: BackupError.self) { try LVInfo.parseReport(#"{"report": [ {"lv": [ {"lv_name": "x" "#) }
        #expect(throws: BackupError.self) { try LVInfo.parseReport(Self.report([Self.lvJSON(size: "10G")])) }
        #expect(throws: BackupError.self) { try LVInfo.parseReport(Self.report([Self.lvJSON(extent: "")])) }
        #expect(throws: BackupError.self) { try LVInfo.parseReport(Self.report([Self.lvJSON(vgFree: "-")])) }
    }

    @Test("the lvs arguments ask for bytes without suffixes and exactly the fields decoded")
    func lvsArguments() {
        let args = LVMSnapshotDriver.lvsArguments(["vg0"])
        #expect(args.first == "lvs" && args.last == "vg0")
        for flag in ["--reportformat", "json", "--units", "b", "--nosuffix", "--binary"] { #expect(args.contains(flag)) }
        let fields = LVInfo.fields.split(separator: ",").map(String.init)
        #expect(Set(fields) == Set(LVInfo.CodingKeys.allRawValues))
        #expect(fields.count == LVInfo.CodingKeys.allRawValues.count)
    }

    // MARK: - snapshot_size

    @Test("percentages of the origin, the VG and the free space, rounded up to whole extents")
    func percentages() throws {
        let lv = try Self.origin(size: 10 * Self.gib, vgSize: 100 * Self.gib, vgFree: 40 * Self.gib)
        #expect(try LVMSnapshotDriver.extents("20%ORIGIN", origin: lv) == 512)     // 2 GiB / 4 MiB
        #expect(try LVMSnapshotDriver.extents("20%origin", origin: lv) == 512)
        #expect(try LVMSnapshotDriver.extents(" 20%ORIGIN ", origin: lv) == 512)
        #expect(try LVMSnapshotDriver.extents("10%VG", origin: lv) == 2560)        // 10 GiB
        #expect(try LVMSnapshotDriver.extents("50%FREE", origin: lv) == 5120)      // 20 GiB
        #expect(try LVMSnapshotDriver.extents("100%ORIGIN", origin: lv) == 2560)
        #expect(try LVMSnapshotDriver.extents("0.5%ORIGIN", origin: lv) == 13)     // 51.2 MiB -> 12.8 -> 13
        // A small origin: 20% of 10 MiB is half an extent, which becomes one.
        let small = try Self.origin(size: 10 * Self.mib)
        #expect(try LVMSnapshotDriver.extents("20%ORIGIN", origin: small) == 1)
        // 30% of 100 MiB = 30 MiB = 7.5 extents: up, never down.
        #expect(try LVMSnapshotDriver.extents("30%ORIGIN", origin: try Self.origin(size: 100 * Self.mib)) == 8)
    }

    @Test("sizes with lvcreate's units (binary; megabytes without one), rounded up to whole extents")
    func sizes() throws {
        let lv = try Self.origin(size: 10 * Self.gib)
        #expect(try LVMSnapshotDriver.extents("2G", origin: lv) == 512)
        #expect(try LVMSnapshotDriver.extents("2g", origin: lv) == 512)
        #expect(try LVMSnapshotDriver.extents("1.5g", origin: lv) == 384)
        #expect(try LVMSnapshotDriver.extents("400", origin: lv) == 100, "no unit: MiB, as lvcreate")
        #expect(try LVMSnapshotDriver.extents("400m", origin: lv) == 100)
        #expect(try LVMSnapshotDriver.extents("401M", origin: lv) == 101)
        #expect(try LVMSnapshotDriver.extents("4097k", origin: lv) == 2)
        #expect(try LVMSnapshotDriver.extents("4194304b", origin: lv) == 1)
        #expect(try LVMSnapshotDriver.extents("4194305b", origin: lv) == 2)
        #expect(try LVMSnapshotDriver.extents("8192s", origin: lv) == 1)           // 4 MiB in 512-byte sectors
        #expect(try LVMSnapshotDriver.extents("1t", origin: lv) == 262_144)
        #expect(try LVMSnapshotDriver.extents("1", origin: lv) == 1, "less than an extent is one extent")
        #expect(LVMSnapshotDriver.parseBytes("1p") == 1 << 50)
        #expect(LVMSnapshotDriver.parseBytes("2e") == 2 << 60)
        #expect(LVMSnapshotDriver.parseBytes("0.5k") == 512)
        #expect(LVMSnapshotDriver.parseBytes("1.0000001b") == 2, "bytes round up")
    }

    @Test("what is not a size or a percentage is a config error (exit 78), not a guess",
          arguments: ["", "G", "abc", "2X", "-1G", "0", "0G", "0%ORIGIN", "-5%VG", "101%ORIGIN", "20%", "20%FOO", "x%ORIGIN", "20%%VG", "nan%VG"])
    func badSpecs(_ spec: String) throws {
        let lv = try Self.origin(size: 10 * Self.gib)
        let e = #expect(throws: BackupError.self) { try LVMSnapshotDriver.extents(spec, origin: lv) }
        #expect(e?.code == .config, "\(spec): \((e?.description ?? "no error"))")
    }

    @Test("an extent size LVM reported as 0 does not divide by zero")
    func zeroExtent() throws {
        let lv = try Self.origin(size: 8 * Self.mib, extent: 0)
        #expect(try LVMSnapshotDriver.extents("1m", origin: lv) == 1 << 20)
        #expect(try LVMSnapshotDriver.extents("50%ORIGIN", origin: lv) == 4 << 20)
    }

    @Test("a huge size (2^62 bytes and more) is refused as not a size (78), not a crash (lvm.snapshot_size: 8e)")
    func hugeSizesAreRefused() throws {
        let report = #"{"report":[{"lv":[{"lv_name":"root","vg_name":"vg0","lv_attr":"-wi-ao----","lv_size":"1073741824","pool_lv":"","lv_kernel_major":"253","lv_kernel_minor":"1","data_percent":"","metadata_percent":"","lv_snapshot_invalid":"","vg_free":"1073741824","vg_size":"2147483648","vg_extent_size":"4194304"}]}]}"#
        let lv = try #require(try LVInfo.parseReport(report).first)
        for spec in ["8e", "16e", "4e", "99999999999999999999g"] {
            #expect(LVMSnapshotDriver.parseBytes(spec) == nil, "\(spec)")
            #expect(throws: BackupError.self) { try LVMSnapshotDriver.extents(spec, origin: lv) }
        }
        #expect(LVMSnapshotDriver.parseBytes("3e") == 3 << 60)
    }
}

extension LVInfo.CodingKeys {
    static var allRawValues: [String] {
        let all: [LVInfo.CodingKeys] = [.name, .vg, .attr, .sizeBytes, .pool, .kernelMajor, .kernelMinor, .dataPercent, .metadataPercent, .snapshotInvalid,
         .vgFreeBytes, .vgSizeBytes, .extentBytes]
        return all.map(\.rawValue)
    }
}

/// A stand-in for LVM: answers `lvs` from a fixed list of LVs (per volume group, as lvs does when
/// given one) and records every other command.
final class FakeLVM: LVMRunner, @unchecked Sendable {
    private let lock = NSLock()
    private var lvsByVG: [String: [String]]
    private var calls: [[String]] = []

    init(_ lvs: [(vg: String, json: String)]) {
        lvsByVG = Dictionary(grouping: lvs, by: \.vg).mapValues { $0.map(\.json) }
    }

    var commands: [[String]] { lock.withLock { calls } }

    func run(_ arguments: [String]) throws -> String {
        lock.withLock {
            guard arguments.first == "lvs" else { calls.append(arguments); return "" }
            // `lvs VG` reports that volume group only; plain `lvs` (the field list last) every LV.
            let last = arguments.last ?? ""
            return LVMSizeTests.report(last == LVInfo.fields ? lvsByVG.values.flatMap { $0 } : lvsByVG[last] ?? [])
        }
    }
}

/// The LVM driver's decisions with LVM stood in for: capacity, the lvcreate command, validation.
@Suite("LVM driver decisions (fake lvs)")
struct LVMDriverDecisionTests {
    static func classic(_ name: String, size: Int64 = 10 << 30, vgFree: Int64, vg: String = "vg0") -> (vg: String, json: String) {
        (vg, LVMSizeTests.lvJSON(name: name, vg: vg, size: String(size), vgFree: String(vgFree), vgSize: String(100 << 30)))
    }

    static func volume(_ identity: String, thin: Bool = false) -> Volume {
        Volume(method: .lvm, livePath: "/var/lib/maas", identity: identity, fsType: "ext4",
               detail: thin ? "thin snapshot in pool vg0/pool0" : "cow snapshot 20%ORIGIN")
    }

    static func lvcreate(_ fake: FakeLVM) -> [[String]] { fake.commands.filter { $0.first == "lvcreate" } }

    static func value(after flag: String, in args: [String]) -> String? {
        args.firstIndex(of: flag).flatMap { $0 + 1 < args.count ? args[$0 + 1] : nil }
    }

    @Test("enough free extents: each snapshot gets what snapshot_size asks, and lvcreate is told so")
    func enoughSpace() throws {
        let fake = FakeLVM([Self.classic("root", vgFree: 4 << 30), Self.classic("maas", vgFree: 4 << 30)])
        let d = LVMSnapshotDriver(snapshotSize: "20%ORIGIN", lvm: fake)
        try d.checkCapacity([Self.volume("vg0/root"), Self.volume("vg0/maas")])
        let snap = d.plannedSnapshot(of: Self.volume("vg0/root"), runID: "20260101T000000Z-abc")
        #expect(snap.identity == "vg0/msb-20260101T000000Z-abc-root")
        try d.create(snap)
        let args = try #require(Self.lvcreate(fake).first)
        #expect(Self.value(after: "--extents", in: args) == "512")
        #expect(Self.value(after: "-n", in: args) == "msb-20260101T000000Z-abc-root")
        #expect(Self.value(after: "--permission", in: args) == "r")
        #expect(args.contains("--snapshot") && args.last == "vg0/root")
        #expect(!args.contains("--size"))
    }

    @Test("short of space but half is free: every snapshot is cut in proportion")
    func cappedInProportion() throws {
        // 2 x 512 extents wanted, 768 free.
        let fake = FakeLVM([Self.classic("root", vgFree: 3 << 30), Self.classic("maas", vgFree: 3 << 30)])
        let d = LVMSnapshotDriver(snapshotSize: "20%ORIGIN", lvm: fake)
        try d.checkCapacity([Self.volume("vg0/root"), Self.volume("vg0/maas")])
        for lv in ["root", "maas"] { try d.create(d.plannedSnapshot(of: Self.volume("vg0/\(lv)"), runID: "r")) }
        let sizes = Self.lvcreate(fake).map { Self.value(after: "--extents", in: $0) }
        #expect(sizes == ["384", "384"])
    }

    @Test("less than half of the wanted space free: refused before anything is stopped, naming the VG (exit 69)")
    func refusedWhenFarTooSmall() throws {
        let fake = FakeLVM([Self.classic("root", vgFree: 1 << 30), Self.classic("maas", vgFree: 1 << 30)])
        let d = LVMSnapshotDriver(snapshotSize: "20%ORIGIN", lvm: fake)
        let e = #expect(throws: BackupError.self) { try d.checkCapacity([Self.volume("vg0/root"), Self.volume("vg0/maas")]) }
        #expect(e?.code == .unavailable)
        let text = (e?.description ?? "no error")
        #expect(text.contains("vg0") && text.contains("1024 MiB free") && text.contains("4096 MiB"), "\(text)")
        #expect(Self.lvcreate(fake).isEmpty)
    }

    @Test("volume groups are counted apart: a full VG does not borrow another's free space")
    func perVolumeGroup() throws {
        let fake = FakeLVM([Self.classic("root", vgFree: 100 << 20, vg: "vgA"), Self.classic("maas", vgFree: 50 << 30, vg: "vgB")])
        let d = LVMSnapshotDriver(snapshotSize: "20%ORIGIN", lvm: fake)
        let e = #expect(throws: BackupError.self) { try d.checkCapacity([Self.volume("vgA/root"), Self.volume("vgB/maas")]) }
        #expect((e?.description ?? "no error").contains("vgA") && !(e?.description ?? "no error").contains("vgB/maas"))
    }

    @Test("a thin LV: no COW size, the pool's fill is checked instead")
    func thin() throws {
        func pool(_ data: String) -> FakeLVM {
            FakeLVM([("vg0", LVMSizeTests.lvJSON(name: "maas", attr: "Vwi-aotz--", pool: "pool0", vgFree: "0")),
                     ("vg0", LVMSizeTests.lvJSON(name: "pool0", attr: "twi-aotz--", data: data, meta: "10.00", vgFree: "0"))])
        }
        let full = LVMSnapshotDriver(lvm: pool("96.00"))
        let e = #expect(throws: BackupError.self) { try full.checkCapacity([Self.volume("vg0/maas", thin: true)]) }
        #expect(e?.code == .unavailable && (e?.description ?? "no error").contains("vg0/pool0"))

        let fake = pool("50.00")
        let d = LVMSnapshotDriver(lvm: fake)
        try d.checkCapacity([Self.volume("vg0/maas", thin: true)])
        try d.create(d.plannedSnapshot(of: Self.volume("vg0/maas", thin: true), runID: "r"))
        let args = try #require(Self.lvcreate(fake).first)
        #expect(Self.value(after: "--setactivationskip", in: args) == "n")
        #expect(!args.contains("--extents") && !args.contains("--size"), "a thin snapshot has no size: \(args)")
    }

    @Test("an LV that is gone by the time of the check: refused, not a crash")
    func goneLV() {
        let d = LVMSnapshotDriver(lvm: FakeLVM([Self.classic("other", vgFree: 1 << 30)]))
        let e = #expect(throws: BackupError.self) { try d.checkCapacity([Self.volume("vg0/root")]) }
        #expect(e?.code == .unavailable)
    }

    @Test("without a capacity plan, lvcreate gets snapshot_size as written (--extents for %, --size otherwise)",
          arguments: [("20%ORIGIN", "--extents"), ("2G", "--size")])
    func createWithoutPlan(_ spec: String, _ flag: String) throws {
        let fake = FakeLVM([Self.classic("root", vgFree: 4 << 30)])
        let d = LVMSnapshotDriver(snapshotSize: spec, lvm: fake)
        try d.create(d.plannedSnapshot(of: Self.volume("vg0/root"), runID: "r"))
        #expect(Self.value(after: flag, in: try #require(Self.lvcreate(fake).first)) == spec)
    }

    @Test("snapshot names: msb-<run>-<origin>, characters LVM refuses replaced, at most 120 characters")
    func snapshotNames() {
        let d = LVMSnapshotDriver(lvm: FakeLVM([]))
        #expect(d.plannedSnapshot(of: Self.volume("vg0/root"), runID: "2026 01/01:x").identity == "vg0/msb-2026_01_01_x-root")
        let long = d.plannedSnapshot(of: Self.volume("vg0/root"), runID: String(repeating: "r", count: 300))
        let name = String(long.identity.split(separator: "/").last ?? "")
        #expect(name.count == 120 && name.hasPrefix(LVMSnapshotDriver.namePrefix))
    }

    @Test("validate: an invalid or 100% full COW snapshot fails the run; one in use does not")
    func validate() throws {
        func snap(data: String, invalid: String) -> (LVMSnapshotDriver, TakenSnapshot) {
            let json = LVMSizeTests.lvJSON(name: "msb-r-root", attr: "sri-aos---", data: data, invalid: invalid)
            let d = LVMSnapshotDriver(lvm: FakeLVM([("vg0", json)]))
            return (d, TakenSnapshot(volume: Self.volume("vg0/root"), identity: "vg0/msb-r-root"))
        }
        let (ok, s1) = snap(data: "42.00", invalid: "")
        try ok.validate(s1)
        for (data, invalid) in [("100.00", ""), ("", "1")] {
            let (d, s) = snap(data: data, invalid: invalid)
            let e = #expect(throws: BackupError.self) { try d.validate(s) }
            #expect((e?.description ?? "no error").contains("overflowed"), "\((e?.description ?? "no error"))")
        }
        let gone = LVMSnapshotDriver(lvm: FakeLVM([]))
        #expect(throws: BackupError.self) { try gone.validate(s1) }
    }

    @Test("leftovers are the LVs named like ours, in any VG")
    func leftovers() throws {
        let fake = FakeLVM([("vg0", LVMSizeTests.lvJSON(name: "msb-old-root")), ("vg0", LVMSizeTests.lvJSON(name: "root")),
                            ("vg1", LVMSizeTests.lvJSON(name: "msb-old-maas", vg: "vg1")), ("vg1", LVMSizeTests.lvJSON(name: "xmsb-", vg: "vg1"))])
        #expect(Set(try LVMSnapshotDriver(lvm: fake).leftovers()) == ["vg0/msb-old-root", "vg1/msb-old-maas"])
    }
}
