import Foundation

/// Formatting for people: messages and the command line's summaries.
public enum Human {
    /// 1536 -> "1.5 KiB"; under 1 KiB in bytes.
    public static func bytes(_ n: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(n)
        var i = 0
        while v >= 1024 && i < units.count - 1 { v /= 1024; i += 1 }
        return i == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[i])
    }
}
