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
    public static let partialSuffix = ".tar.gz.partial"
    public static let manifestSuffix = ".tar.gz.manifest.json"

    public static func make(host: String, date: Date) -> String {
        "maas-backup-\(host)-\(timestamp(date))\(suffix)"
    }

    public static func timestamp(_ d: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return f.string(from: d)
    }

    public static func iso8601(_ d: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: d)
    }

    /// True for a complete archive's file name (never a .partial).
    public static func isArchive(_ name: String) -> Bool {
        name.hasPrefix("maas-backup-") && name.hasSuffix(suffix)
    }
}
