import MSBKit

/// The snapshot drivers, in the order `auto` tries them: Btrfs, then LVM.
package enum SnapshotDrivers {
    static package func all(_ config: Config) -> [any SnapshotDriver] {
        [BtrfsSnapshotDriver(), LVMSnapshotDriver(snapshotSize: config.lvm.snapshotSize)]
    }
}
