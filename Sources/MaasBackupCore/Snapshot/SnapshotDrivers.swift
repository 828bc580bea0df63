/// The snapshot drivers besides Btrfs.
enum SnapshotDrivers {
    static func extra(_ config: Config) -> [any SnapshotDriver] {
        []  // LVM joins here: LVMSnapshotDriver(snapshotSize: config.lvm.snapshotSize)
    }
}
