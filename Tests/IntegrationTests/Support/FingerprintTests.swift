import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The tree fingerprint every "nothing changed" test compares: on Btrfs, readdir can miss a file
/// that another process renames over while the folder is read (the new name gets a directory
/// index past the one readdir stops at, and the old entry is gone), which the stand-in regiond
/// does to var/lib/maas/counter every 5 ms.
@Suite("tree fingerprint", .enabled(if: TestEnv.skipReason == nil, "\(TestEnv.skipReason ?? "")"))
struct FingerprintTests {
    @Test("a volatile file renamed over during the walk is still in the fingerprint (Btrfs readdir race)")
    func renamedOverDuringWalk() throws {
        let dir = "/tmp/msb-fingerprint-\(getpid())"
        let img = dir + "/img", mnt = dir + "/mnt"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        #expect(try TestEnv.sh(["truncate", "-s", "128M", img]).status == 0)
        #expect(try TestEnv.sh(["mkfs.btrfs", "-q", img]).status == 0)
        let loop = try TestEnv.sh(["losetup", "-f", "--show", img]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try TestEnv.sh(["mount", loop, mnt]).status == 0)
        defer {
            _ = try? TestEnv.sh(["umount", mnt])
            _ = try? TestEnv.sh(["losetup", "-d", loop])
            try? FileManager.default.removeItem(atPath: dir)
        }
        let maas = mnt + "/var/lib/maas"
        for i in 0..<200 { try FileManager.default.createDirectory(atPath: maas + "/d\(i)", withIntermediateDirectories: true) }
        try "0\n".write(toFile: maas + "/counter", atomically: false, encoding: .utf8)

        let stop = ManagedAtomicFlag()
        let writerDone = DispatchSemaphore(value: 0)
        let writer = Thread {
            while !stop.isSet {
                let fd = open(maas + "/counter.tmp", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
                if fd >= 0 { close(fd) }
                rename(maas + "/counter.tmp", maas + "/counter")
            }
            writerDone.signal()
        }
        writer.start()
        var missed = 0
        for _ in 0..<400 where RT.fingerprint(root: mnt, members: ["var/lib/maas"])["var/lib/maas/counter"] == nil {
            missed += 1
        }
        stop.set()
        // The writer has ended before the file system is unmounted (a busy umount would leave it mounted).
        writerDone.wait()
        #expect(missed == 0, "counter missing from \(missed) of 400 fingerprints")
    }
}

/// A flag one thread sets and another polls.
final class ManagedAtomicFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}
