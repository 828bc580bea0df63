import Foundation
#if canImport(Glibc)
import Glibc
#endif

public enum ToolInfo {
    public static let version = "0.1.0"
}

/// Archive names: maas-backup-<host>-<UTC yyyymmddTHHMMSSZ>.tar.gz
public enum ArchiveName {
    public static let suffix = ".tar.gz"
    /// What a partial archive's and a sidecar manifest's names add to the archive's
    /// (BackupSet's BackupFiles names them for a destination's archives).
    public static let partialExtension = ".partial"
    public static let sidecarExtension = ".manifest.json"
    public static let partialSuffix = suffix + partialExtension
    public static let manifestSuffix = suffix + sidecarExtension

    public static func make(host: String, date: Date) -> String {
        "maas-backup-\(host)-\(timestamp(date))\(suffix)"
    }

    /// The UTC time in a name: 20261126T012153Z.
    public static func timestamp(_ d: Date) -> String { stampFormatter().string(from: d) }

    /// The time of a name's timestamp, nil when it is not one.
    public static func date(ofTimestamp s: String) -> Date? { stampFormatter().date(from: s) }

    public static func iso8601(_ d: Date) -> String { isoFormatter().string(from: d) }

    /// The time of an ISO 8601 string (2026-11-26T01:21:53Z), nil when it is not one.
    public static func date(iso8601 s: String) -> Date? { isoFormatter().date(from: s) }

    private static func stampFormatter() -> DateFormatter {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return f
    }

    private static func isoFormatter() -> ISO8601DateFormatter {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f
    }

    /// True for a complete archive's file name (never a .partial).
    public static func isArchive(_ name: String) -> Bool {
        name.hasPrefix("maas-backup-") && name.hasSuffix(suffix)
    }
}
