import Foundation
import MSBKit
import LibLVM2Cmd
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Runs one LVM command and returns what it printed (the driver's only way to LVM, so tests can
/// stand in for it). The real one is `LibLVMRunner`, in-process through liblvm2cmd.
public protocol LVMRunner: Sendable {
    func run(_ arguments: [String]) throws -> String
}

/// LVM commands in-process (liblvm2cmd): no fork, no exec, which matters inside the window.
public struct LibLVMRunner: LVMRunner {
    public init() {}
    public func run(_ arguments: [String]) throws -> String {
        try LVM2Cmd.run(arguments).text
    }
}

/// One logical volume as `lvs --reportformat json --units b --nosuffix --binary` reports it.
public struct LVInfo: Sendable, Hashable, Decodable {
    public var name: String
    public var vg: String
    public var attr: String
    public var sizeBytes: Int64
    /// The thin pool of a thin LV, empty for a classic one.
    public var pool: String
    public var kernelMajor: Int
    public var kernelMinor: Int
    /// Snapshot COW (classic) or pool data use, in percent; nil when LVM reports none.
    public var dataPercent: Double?
    public var metadataPercent: Double?
    public var snapshotInvalid: Bool
    public var vgFreeBytes: Int64
    public var vgSizeBytes: Int64
    public var extentBytes: Int64

    public var identity: String { "\(vg)/\(name)" }
    public var isThin: Bool { !pool.isEmpty }

    package enum CodingKeys: String, CodingKey {
        case name = "lv_name", vg = "vg_name", attr = "lv_attr", sizeBytes = "lv_size", pool = "pool_lv"
        case kernelMajor = "lv_kernel_major", kernelMinor = "lv_kernel_minor"
        case dataPercent = "data_percent", metadataPercent = "metadata_percent"
        case snapshotInvalid = "lv_snapshot_invalid"
        case vgFreeBytes = "vg_free", vgSizeBytes = "vg_size", extentBytes = "vg_extent_size"
    }

    /// The `-o` list matching CodingKeys.
    static package let fields = "lv_name,vg_name,lv_attr,lv_size,pool_lv,lv_kernel_major,lv_kernel_minor,data_percent,"
        + "metadata_percent,lv_snapshot_invalid,vg_free,vg_size,vg_extent_size"

    public init(from decoder: any Decoder) throws {
        // lvs reports every value as a string.
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func s(_ k: CodingKeys) throws -> String { try c.decodeIfPresent(String.self, forKey: k) ?? "" }
        func i(_ k: CodingKeys) throws -> Int64 {
            let v = try s(k)
            guard let n = Int64(v) else {
                throw DecodingError.dataCorruptedError(forKey: k, in: c, debugDescription: "not a number: '\(v)'")
            }
            return n
        }
        name = try s(.name)
        vg = try s(.vg)
        attr = try s(.attr)
        sizeBytes = try i(.sizeBytes)
        pool = try s(.pool)
        kernelMajor = Int(try s(.kernelMajor)) ?? -1
        kernelMinor = Int(try s(.kernelMinor)) ?? -1
        dataPercent = Double(try s(.dataPercent))
        metadataPercent = Double(try s(.metadataPercent))
        snapshotInvalid = try s(.snapshotInvalid) == "1"
        vgFreeBytes = try i(.vgFreeBytes)
        vgSizeBytes = try i(.vgSizeBytes)
        extentBytes = try i(.extentBytes)
    }

    /// Parses the JSON of `lvs --reportformat json` (warnings LVM printed around it are skipped).
    public static func parseReport(_ text: String) throws -> [LVInfo] {
        struct Report: Decodable { package var report: [Section] }
        struct Section: Decodable { package var lv: [LVInfo] }
        guard let start = text.firstIndex(of: "{"), let end = text.lastIndex(of: "}") else {
            throw BackupError.failed("lvs printed no JSON report: \(text.prefix(200))")
        }
        do {
            let report = try JSONDecoder().decode(Report.self, from: Data(text[start...end].utf8))
            return report.report.flatMap(\.lv)
        } catch {
            throw BackupError.failed("cannot read the lvs report: \(error)")
        }
    }
}

/// LVM: a read-only snapshot of the logical volume holding a path, mounted read-only below the
/// run's private folder. Classic LVs get a COW snapshot of `snapshotSize` (lvm.snapshot_size, an
/// lvcreate size such as "20%ORIGIN", "10%VG" or "2G", capped by the free extents of the volume
/// group); thin LVs a thin snapshot in their pool. Snapshots are named `msb-<runID>-<lv>` so that
/// `recover` can find a killed run's leftovers (`leftovers()`).
///
/// Not handled (probe returns nil): Btrfs on LVM (a block-level copy of a mounted Btrfs has the same
/// fsid, and the kernel would hand back the live filesystem instead of mounting the copy; use the
/// Btrfs driver), bind mounts of a folder inside an LV, and LVs that are not active.
public final class LVMSnapshotDriver: SnapshotDriver {
    public static let namePrefix = "msb-"
    /// Filesystems a snapshot of which can be mounted read-only beside the live one.
    static package let mountOptions: [String: String] = [
        "ext4": "noload", "ext3": "noload", "ext2": "", "xfs": "nouuid,norecovery",
    ]

    public var method: SnapshotMethod { .lvm }
    public let snapshotSize: String
    package let lvm: any LVMRunner
    /// COW sizes (in extents) decided by checkCapacity, by origin "vg/lv"; create falls back to
    /// `snapshotSize` itself for an origin not in here.
    private let plannedExtents = Mutex<[String: Int64]>([:])

    public init(snapshotSize: String = "20%ORIGIN", lvm: any LVMRunner = LibLVMRunner()) {
        self.snapshotSize = snapshotSize
        self.lvm = lvm
    }

    // MARK: - LVM queries

    static package func lvsArguments(_ selection: [String]) -> [String] {
        ["lvs", "--reportformat", "json", "--units", "b", "--nosuffix", "--binary", "-a", "-o", LVInfo.fields] + selection
    }

    /// Every LV LVM knows of.
    package func lvs() throws -> [LVInfo] {
        do {
            return try LVInfo.parseReport(try lvm.run(Self.lvsArguments([])))
        } catch let e as LVM2Error {
            throw BackupError.unavailable("lvs failed: \(e)", hint: "check that LVM works: run lvs")
        }
    }

    /// The LV named `identity` ("vg/lv"), or nil when LVM does not know it.
    package func lv(_ identity: String) throws -> LVInfo? {
        let parts = identity.split(separator: "/", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { return nil }
        let all: [LVInfo]
        do {
            all = try LVInfo.parseReport(try lvm.run(Self.lvsArguments([parts[0]])))
        } catch let e as LVM2Error {
            // The whole volume group is gone: so is the LV.
            if e.messages.contains(where: { $0.contains("not found") || $0.contains("Cannot process volume group") }) {
                return nil
            }
            throw BackupError.failed("lvs \(parts[0]) failed: \(e)")
        }
        return all.first { $0.name == parts[1] }
    }

    /// Snapshot LVs named like ours ("vg/msb-..."), left by a run that was killed.
    public func leftovers() throws -> [String] {
        try lvs().filter { $0.name.hasPrefix(Self.namePrefix) }.map(\.identity)
    }

    // MARK: - SnapshotDriver

    public func probe(path: String) throws -> Volume? {
        guard let m = FileSystem.mount(holding: path), m.root == "/",
              Self.mountOptions[m.fsType] != nil else { return nil }
        // Only device-mapper devices made by LVM: /sys/dev/block/M:m/dm/uuid starts with "LVM-".
        guard let uuid = try? String(contentsOfFile: "/sys/dev/block/\(m.majorMinor)/dm/uuid", encoding: .utf8),
              uuid.hasPrefix("LVM-") else { return nil }
        let mm = m.majorMinor.split(separator: ":").compactMap { Int($0) }
        guard mm.count == 2,
              let lv = try lvs().first(where: { $0.kernelMajor == mm[0] && $0.kernelMinor == mm[1] }) else {
            return nil
        }
        let detail = lv.isThin ? "thin snapshot in pool \(lv.vg)/\(lv.pool)" : "cow snapshot \(snapshotSize)"
        return Volume(method: .lvm, livePath: m.mountPoint, identity: lv.identity, fsType: m.fsType, detail: detail)
    }

    public func checkCapacity(_ volumes: [Volume]) throws {
        var classic: [String: [(lv: LVInfo, want: Int64)]] = [:]
        for v in volumes {
            guard let lv = try lv(v.identity) else {
                throw BackupError.unavailable("the logical volume \(v.identity) holding \(v.livePath) is gone")
            }
            if lv.isThin {
                guard let pool = try self.lv("\(lv.vg)/\(lv.pool)") else {
                    throw BackupError.unavailable("the thin pool \(lv.vg)/\(lv.pool) of \(v.identity) is gone")
                }
                if (pool.dataPercent ?? 0) >= 95 || (pool.metadataPercent ?? 0) >= 95 {
                    throw BackupError.unavailable(
                        "thin pool \(pool.identity) is nearly full (data \(pool.dataPercent ?? 0)%, metadata \(pool.metadataPercent ?? 0)%): a snapshot of \(v.identity) could fill it",
                        hint: "extend the pool (lvextend) or free space in it")
                }
            } else {
                let want = try Self.extents(snapshotSize, origin: lv)
                classic[lv.vg, default: []].append((lv, want))
            }
        }
        var planned: [String: Int64] = [:]
        for (vg, items) in classic {
            let extent = items[0].lv.extentBytes
            let free = items[0].lv.vgFreeBytes / extent
            let total = items.reduce(0) { $0 + $1.want }
            let mib = { (e: Int64) in "\(e * extent >> 20) MiB" }
            if total <= free {
                for i in items { planned[i.lv.identity] = i.want }
            } else if free * 2 >= total {
                // Capped: share what is free, in proportion. An overflow is still caught by validate.
                for i in items { planned[i.lv.identity] = max(1, i.want * free / total) }
            } else {
                let names = items.map(\.lv.identity).joined(separator: ", ")
                throw BackupError.unavailable(
                    "volume group \(vg) has \(mib(free)) free; snapshots of \(names) need \(mib(total)) (lvm.snapshot_size \(snapshotSize)), at least half of it must be free",
                    hint: "add a disk to \(vg) (vgextend), free extents, or lower lvm.snapshot_size")
            }
        }
        plannedExtents.withLock { $0.merge(planned) { _, new in new } }
    }

    public func plannedSnapshot(of volume: Volume, runID: String) -> TakenSnapshot {
        let vg = volume.identity.split(separator: "/").first.map(String.init) ?? volume.identity
        let origin = volume.identity.split(separator: "/").last.map(String.init) ?? "lv"
        let safeRun = String(runID.map { $0.isLetter || $0.isNumber || "+_.-".contains($0) ? $0 : "_" })
        let name = String("\(Self.namePrefix)\(safeRun)-\(origin)".prefix(120))
        return TakenSnapshot(volume: volume, identity: "\(vg)/\(name)")
    }

    public func create(_ snapshot: TakenSnapshot) throws {
        let name = String(snapshot.identity.split(separator: "/").last ?? "")
        // --ignoremonitoring: no dmeventd registration inside the window (validate() checks the COW
        // itself; a thin pool keeps its own monitoring).
        var args = ["lvcreate", "--snapshot", "--ignoremonitoring", "--permission", "r", "--addtag", "maas-snapshot-backup", "-n", name]
        if snapshot.volume.detail.hasPrefix("thin") {
            // A thin snapshot has no size; it is skipped at activation unless told otherwise.
            args += ["--setactivationskip", "n"]
        } else if let extents = plannedExtents.withLock({ $0[snapshot.volume.identity] }) {
            args += ["--extents", String(extents)]
        } else if snapshotSize.contains("%") {
            args += ["--extents", snapshotSize]
        } else {
            args += ["--size", snapshotSize]
        }
        args.append(snapshot.volume.identity)
        do {
            _ = try lvm.run(args)
        } catch let e as LVM2Error {
            throw BackupError.failed("cannot snapshot \(snapshot.volume.identity): \(e)")
        }
    }

    public func expose(_ snapshot: TakenSnapshot, privateDir: String) throws -> TakenSnapshot {
        let name = String(snapshot.identity.split(separator: "/").last ?? "")
        let mountPoint = privateDir + "/" + name
        if mkdir(mountPoint, 0o700) != 0 && errno != EEXIST {
            throw BackupError.failed("cannot create the mount point \(mountPoint): \(Errno.last.description)")
        }
        var taken = snapshot
        taken.mountPoint = mountPoint
        let device = try devicePath(snapshot.identity)
        let options = Self.mountOptions[snapshot.volume.fsType] ?? ""
        let flags = UInt(MS_RDONLY) | UInt(MS_NOSUID) | UInt(MS_NODEV) | UInt(MS_NOEXEC)
        if mount(device, mountPoint, snapshot.volume.fsType, flags, options) != 0 {
            let err = errno
            _ = rmdir(mountPoint)
            throw BackupError.failed("cannot mount the snapshot \(device) on \(mountPoint) (\(snapshot.volume.fsType), ro,\(options)): \(Errno(rawValue: err).description)")
        }
        taken.readablePath = mountPoint
        return taken
    }

    /// /dev/VG/LV, once udev made it (lvcreate waits for udev; this covers a slow one).
    package func devicePath(_ identity: String) throws -> String {
        let path = "/dev/" + identity
        for _ in 0..<100 {
            if access(path, F_OK) == 0 { return path }
            usleep(100_000)
        }
        throw BackupError.failed("the snapshot device \(path) did not appear", hint: "check that udev runs")
    }

    public func validate(_ snapshot: TakenSnapshot) throws {
        guard let lv = try lv(snapshot.identity) else {
            throw BackupError.failed("the snapshot \(snapshot.identity) disappeared while it was read")
        }
        if lv.isThin {
            if let pool = try self.lv("\(lv.vg)/\(lv.pool)"), (pool.dataPercent ?? 0) >= 100 {
                throw BackupError.failed("thin pool \(pool.identity) ran full while \(snapshot.identity) was read",
                                         hint: "extend the pool (lvextend)")
            }
            return
        }
        if lv.snapshotInvalid || (lv.dataPercent ?? 0) >= 100 {
            throw BackupError.failed(
                "the LVM snapshot \(snapshot.identity) overflowed (COW \(lv.dataPercent.map { "\($0)%" } ?? "full")) while the archive was written: the archive is not consistent",
                hint: "raise lvm.snapshot_size (now \(snapshotSize)) or free extents in \(lv.vg)")
        }
    }

    public func remove(_ snapshot: TakenSnapshot) throws {
        if let mp = snapshot.mountPoint {
            if FileSystem.mounts().contains(where: { $0.mountPoint == mp }) {
                var rc = umount2(mp, 0)
                var tries = 0
                while rc != 0 && errno == EBUSY && tries < 20 {
                    usleep(100_000)
                    tries += 1
                    rc = umount2(mp, 0)
                }
                if rc != 0 && umount2(mp, Int32(MNT_DETACH)) != 0 {
                    throw BackupError.failed("cannot unmount the snapshot at \(mp): \(Errno.last.description)")
                }
            }
            if rmdir(mp) != 0 && errno != ENOENT {
                throw BackupError.failed("cannot remove the mount point \(mp): \(Errno.last.description)")
            }
        }
        guard try lv(snapshot.identity) != nil else { return }  // never made, or already gone
        do {
            _ = try lvm.run(["lvremove", "-f", snapshot.identity])
        } catch let e as LVM2Error {
            throw BackupError.failed("cannot remove the snapshot \(snapshot.identity): \(e)", hint: "remove it with lvremove \(snapshot.identity)")
        }
    }

    // MARK: - Sizes

    /// The COW size `spec` asks for, in extents of `origin`'s volume group: "N%ORIGIN", "N%VG",
    /// "N%FREE", or a size with an lvcreate unit (b, s = 512 B, k, m, g, t, p, e; binary; default m).
    public static func extents(_ spec: String, origin: LVInfo) throws -> Int64 {
        let extent = max(origin.extentBytes, 1)
        let s = spec.trimmingCharacters(in: .whitespaces)
        if let pct = s.firstIndex(of: "%") {
            guard let p = Double(s[..<pct]), p > 0, p <= 100 else {
                throw BackupError.config("lvm.snapshot_size '\(spec)' is not a percentage", hint: "write e.g. 20%ORIGIN")
            }
            let base: Int64
            switch s[s.index(after: pct)...].uppercased() {
            case "ORIGIN": base = origin.sizeBytes
            case "VG": base = origin.vgSizeBytes
            case "FREE": base = origin.vgFreeBytes
            default: throw BackupError.config("lvm.snapshot_size '\(spec)': use %ORIGIN, %VG or %FREE")
            }
            return max(1, Int64((Double(base) * p / 100 / Double(extent)).rounded(.up)))
        }
        guard let bytes = parseBytes(s) else {
            throw BackupError.config("lvm.snapshot_size '\(spec)' is not a size", hint: "write e.g. 20%ORIGIN or 2G")
        }
        return max(1, bytes / extent + (bytes % extent == 0 ? 0 : 1))
    }

    static package func parseBytes(_ s: String) -> Int64? {
        let units: [Character: Int64] = ["b": 1, "s": 512, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30,
                                         "t": 1 << 40, "p": 1 << 50, "e": 1 << 60]
        var number = Substring(s)
        var unit: Int64 = 1 << 20
        if let last = s.last?.lowercased().first, let u = units[last] {
            unit = u
            number = s.dropLast()
        }
        // Under 2^62 bytes (4 EiB): no volume is that large, and Int64 cannot hold 2^63.
        guard let v = Double(number), v > 0, v * Double(unit) < 0x1p62 else { return nil }
        return Int64((v * Double(unit)).rounded(.up))
    }
}
