import MSBKit
/// The snapshot drivers besides Btrfs, in the order `auto` tries them.
package enum SnapshotDrivers {
    static package func extra(_ config: Config) -> [any SnapshotDriver] {
        [LVMSnapshotDriver(snapshotSize: config.lvm.snapshotSize)]
    }
}
