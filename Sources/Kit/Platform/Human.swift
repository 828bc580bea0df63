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

    /// 45 -> "45 s", 5400 -> "1 h 30 min", 200000 -> "2 d 7 h": how long ago, for people.
    public static func age(_ seconds: Int) -> String {
        let s = max(0, seconds)
        if s < 60 { return "\(s) s" }
        if s < 3600 { return "\(s / 60) min" }
        if s < 86400 { return "\(s / 3600) h" + (s % 3600 / 60 > 0 ? " \(s % 3600 / 60) min" : "") }
        return "\(s / 86400) d" + (s % 86400 / 3600 > 0 ? " \(s % 86400 / 3600) h" : "")
    }
}
