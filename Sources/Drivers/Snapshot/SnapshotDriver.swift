import MSBKit

/// A volume that can be snapshotted: one Btrfs subvolume or one LVM logical volume.
/// Several backed-up paths can share one volume; it is snapshotted once.
public struct Volume: Sendable, Hashable, Codable {
    public var method: SnapshotMethod
    /// Where the volume's root is visible in the live tree (the subvolume path, or the LV's mount point).
    public var livePath: String
    /// Driver-specific identity: the subvolume path, or "vg/lv".
    public var identity: String
    /// Filesystem type (btrfs, ext4, xfs) for mounting a snapshot.
    public var fsType: String
    /// Free-form details for the plan and the manifest (e.g. "thin", "cow 20%ORIGIN").
    public var detail: String

    public init(method: SnapshotMethod, livePath: String, identity: String, fsType: String, detail: String = "") {
        self.method = method
        self.livePath = livePath
        self.identity = identity
        self.fsType = fsType
        self.detail = detail
    }
}

/// A snapshot the run made. Recorded in the state journal before it is made, so that a killed run's
/// leftovers can be found and removed.
public struct TakenSnapshot: Sendable, Hashable, Codable {
    public var volume: Volume
    /// The snapshot's own identity: a subvolume path, or "vg/lv".
    public var identity: String
    /// Where the snapshot's root is readable once exposed (a mount point for LVM, the subvolume for Btrfs).
    public var readablePath: String?
    /// Mount point we created for it, if any.
    public var mountPoint: String?

    public init(volume: Volume, identity: String, readablePath: String? = nil, mountPoint: String? = nil) {
        self.volume = volume
        self.identity = identity
        self.readablePath = readablePath
        self.mountPoint = mountPoint
    }
}

/// One snapshot backend behind one small interface (pgBackRest's storage drivers).
/// `probe` and `checkCapacity` run in preflight and change nothing; `snapshot` runs inside the
/// window and must take milliseconds; the rest run after the window, while MAAS is up.
public protocol SnapshotDriver: Sendable {
    var method: SnapshotMethod { get }
    /// The volume holding `path`, or nil when this driver cannot freeze it.
    func probe(path: String) throws -> Volume?
    /// Preflight check that a snapshot of each volume can be made (free extents, permissions).
    func checkCapacity(_ volumes: [Volume]) throws
    /// The name a snapshot of `volume` will get in run `runID` (recorded in the journal first).
    func plannedSnapshot(of volume: Volume, runID: String) -> TakenSnapshot
    /// Inside the window: make the read-only snapshot.
    func create(_ snapshot: TakenSnapshot) throws
    /// After the window: make the snapshot readable below `privateDir`; returns the readable root.
    func expose(_ snapshot: TakenSnapshot, privateDir: String) throws -> TakenSnapshot
    /// After the archive: throws when the snapshot became invalid (an LVM COW overflow).
    func validate(_ snapshot: TakenSnapshot) throws
    /// Unmount and delete. Must succeed on a snapshot that was only partly made or never exposed.
    func remove(_ snapshot: TakenSnapshot) throws
}
