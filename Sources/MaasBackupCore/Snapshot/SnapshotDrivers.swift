/// The snapshot drivers besides Btrfs, in the order `auto` tries them.
enum SnapshotDrivers {
    static func extra(_ config: Config) -> [any SnapshotDriver] {
        [LVMSnapshotDriver(snapshotSize: config.lvm.snapshotSize)]
    }
}
