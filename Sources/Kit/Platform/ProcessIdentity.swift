import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A process named by its PID and its start time, so that a reused PID is not taken for the run
/// that wrote a journal.
public enum ProcessIdentity {
    /// Field 22 (starttime) of /proc/<pid>/stat, or nil when there is no such process.
    public static func startTime(_ pid: Int32) -> UInt64? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/stat") else { return nil }
        let bytes = Array(data)
        // The command name (field 2) is in parentheses and may hold spaces or ')': skip past the last ')'.
        guard let close = bytes.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = bytes[(close + 1)...].split(separator: UInt8(ascii: " "))
        // fields[0] is field 3 (state), so field 22 is fields[19].
        guard fields.count > 19 else { return nil }
        return UInt64(String(decoding: fields[19], as: UTF8.self))
    }

    /// True when `pid` is another process that is still the one recorded: same start time, not a
    /// zombie. Journals of older versions (no start time) fall back to the command line.
    public static func isRunning(pid: Int32, startTime: UInt64?) -> Bool {
        guard pid != getpid(), pid > 0, let now = self.startTime(pid) else { return false }
        if let state = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
           let close = state.lastIndex(of: ")"), state[state.index(after: close)...].hasPrefix(" Z") { return false }
        if let startTime { return now == startTime }
        guard let cmd = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8) else { return false }
        return cmd.contains("maas-snapshot-backup")
    }
}
