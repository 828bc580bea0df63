import Foundation
import MaasBackupCore
import Testing

/// What the window asks of LVM: one lvcreate, which must not wait for dmeventd (issue 15).
@Suite struct LVMCreateTests {
    final class Recorder: LVMRunner, @unchecked Sendable {
        private let lock = NSLock()
        private var calls: [[String]] = []
        var all: [[String]] { lock.lock(); defer { lock.unlock() }; return calls }
        func run(_ arguments: [String]) throws -> String { lock.lock(); calls.append(arguments); lock.unlock(); return "" }
    }

    @Test(arguments: ["cow 20%ORIGIN", "thin"])
    func snapshotCreationSkipsDmeventdRegistration(detail: String) throws {
        let rec = Recorder()
        let driver = LVMSnapshotDriver(snapshotSize: "20%ORIGIN", lvm: rec)
        let v = Volume(method: .lvm, livePath: "/var/lib/maas", identity: "vg0/maas", fsType: "ext4", detail: detail)
        try driver.create(driver.plannedSnapshot(of: v, runID: "20261129T101500Z-42"))
        let calls = rec.all
        #expect(calls.count == 1, "one LVM call in the window: \(calls)")
        let args = try #require(calls.first)
        #expect(args.first == "lvcreate" && args.contains("--snapshot") && args.last == "vg0/maas", "\(args)")
        #expect(args.contains("--ignoremonitoring"), "lvcreate would register the snapshot with dmeventd inside the window: \(args)")
    }
}
