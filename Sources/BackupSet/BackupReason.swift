/// Why a backup was taken, as retention, the metrics, the off-host copy and rollback tell backups
/// apart. A manifest records the reason as text: the daily unit's `scheduled`, the command line's
/// `manual` (or whatever `--reason` said), the package hooks' `pre-upgrade <package changes>`. The
/// raw values are those texts, so manifests and journals on disk keep their meaning.
public enum BackupReason: String, Sendable, Codable, CaseIterable {
    case manual
    case scheduled
    case preUpgrade = "pre-upgrade"

    /// The kind of a recorded reason: a text starting with a raw value is of that kind (the hooks
    /// write `pre-upgrade maas-region-controller OLD -> NEW`); any other text is a manual backup's.
    public init(recorded text: String) {
        if text.hasPrefix(BackupReason.preUpgrade.rawValue) { self = .preUpgrade }
        else if text.hasPrefix(BackupReason.scheduled.rawValue) { self = .scheduled }
        else { self = .manual }
    }
}
