import Foundation

/// A node_exporter textfile with the last backup's figures, written atomically.
enum Metrics {
    static func write(path: String, result: BackupResult) {
        let now = Int(Date().timeIntervalSince1970)
        let text = """
            # HELP maas_snapshot_backup_last_success_timestamp_seconds Time of the last successful backup.
            # TYPE maas_snapshot_backup_last_success_timestamp_seconds gauge
            maas_snapshot_backup_last_success_timestamp_seconds \(now)
            # HELP maas_snapshot_backup_downtime_milliseconds MAAS downtime of the last backup.
            # TYPE maas_snapshot_backup_downtime_milliseconds gauge
            maas_snapshot_backup_downtime_milliseconds \(result.downtimeMs)
            # HELP maas_snapshot_backup_archive_bytes Size of the last backup archive.
            # TYPE maas_snapshot_backup_archive_bytes gauge
            maas_snapshot_backup_archive_bytes \(result.sizeBytes)
            # HELP maas_snapshot_backup_duration_milliseconds Duration of the last backup.
            # TYPE maas_snapshot_backup_duration_milliseconds gauge
            maas_snapshot_backup_duration_milliseconds \(result.durationMs)

            """
        // 0644: node_exporter reads it. AtomicFile: a name planted in the textfile folder is never followed.
        try? AtomicFile.write(Array(text.utf8), to: path, mode: 0o644)
    }
}
