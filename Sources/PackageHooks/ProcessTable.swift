import Foundation
import MSBKit
import MSBPackages

/// One process as /proc shows it: enough to walk up the parent chain and to tell a reused pid apart.
public struct ProcessEntry: Sendable, Hashable, Codable {
    public var pid: Int32
    public var parentPID: Int32
    /// The kernel's short command name (at most 15 bytes).
    public var command: String
    /// Start time in clock ticks since boot (field 22 of /proc/PID/stat): a pid plus this is unique.
    public var startTime: UInt64

    public init(pid: Int32, parentPID: Int32, command: String, startTime: UInt64) {
        self.pid = pid
        self.parentPID = parentPID
        self.command = command
        self.startTime = startTime
    }

    /// Parses /proc/PID/stat. The command name is in parentheses and may itself contain spaces and
    /// parentheses, so the fields after it are found from the last ')'.
    public static func parse(stat: String) -> ProcessEntry? {
        guard let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")"), open < close,
              let pid = Int32(stat[..<open].trimmingCharacters(in: .whitespaces))
        else { return nil }
        let command = String(stat[stat.index(after: open)..<close])
        // After ")": state(3) ppid(4) ... starttime(22) => index 0 is state, 1 ppid, 19 starttime.
        let rest = stat[stat.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        guard rest.count > 19, let ppid = Int32(rest[1]), let start = UInt64(rest[19]) else { return nil }
        return ProcessEntry(pid: pid, parentPID: ppid, command: command, startTime: start)
    }

    /// Splits /proc/PID/cmdline (NUL-terminated arguments) into arguments.
    public static func parse(cmdline: [UInt8]) -> [String] {
        var bytes = cmdline[...]
        if bytes.last == 0 { bytes = bytes.dropLast() }
        if bytes.isEmpty { return [] }
        return bytes.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
    }
}

/// Reading processes from a proc file system (a folder for tests).
public struct ProcessTable: Sendable {
    public var procRoot: String

    public init(procRoot: String = "/proc") {
        self.procRoot = procRoot
    }

    public func entry(pid: Int32) -> ProcessEntry? {
        guard let data = FileManager.default.contents(atPath: "\(procRoot)/\(pid)/stat") else { return nil }
        return ProcessEntry.parse(stat: String(decoding: data, as: UTF8.self))
    }

    /// The arguments a process was started with (argv[0] first).
    public func arguments(pid: Int32) -> [String]? {
        guard let data = FileManager.default.contents(atPath: "\(procRoot)/\(pid)/cmdline") else { return nil }
        return ProcessEntry.parse(cmdline: Array(data))
    }

    /// A process's current directory.
    public func workingDirectory(pid: Int32) -> String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: "\(procRoot)/\(pid)/cwd")
    }

    /// The parent chain of `pid`, nearest first, not including `pid` itself; stops at pid 1 or at
    /// the first process that cannot be read. Bounded, so a cycle in a fake table cannot hang it.
    public func ancestors(of pid: Int32) -> [ProcessEntry] {
        var out: [ProcessEntry] = []
        var current = entry(pid: pid)?.parentPID ?? 0
        var seen: Set<Int32> = [pid]
        while current > 0, out.count < 256, !seen.contains(current), let e = entry(pid: current) {
            out.append(e)
            seen.insert(current)
            current = e.parentPID
        }
        return out
    }

    /// Whether the process `e` is still the same process (same pid and start time).
    public func isAlive(_ e: ProcessEntry) -> Bool {
        entry(pid: e.pid)?.startTime == e.startTime
    }
}
