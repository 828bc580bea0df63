import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What a run changed, written before each change to <state_dir>/runs/<run id>.json, so that a
/// killed run's leftovers can be found (`status`) and undone (`recover`). Removed when the run ends cleanly.
public struct JournalRecord: Sendable, Codable {
    public var runID: String
    public var pid: Int32
    /// The process's start time (/proc/<pid>/stat field 22, clock ticks since boot): with `pid`, it
    /// names the run's process even after the PID is reused. nil in journals of older versions.
    public var pidStartTime: UInt64? = ProcessIdentity.startTime(getpid())
    public var command: String
    public var startedAt: String
    public var phase: String
    public var stoppedServices: [String] = []
    public var servicesRestarted = false
    public var snapshots: [TakenSnapshot] = []
    public var privateDir: String?
    public var partialArchive: String?
}

public final class RunJournal: @unchecked Sendable {
    public private(set) var record: JournalRecord
    public let path: String

    public init(stateDir: String, runID: String, command: String) throws {
        let dir = stateDir + "/runs"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        path = dir + "/\(runID).json"
        record = JournalRecord(runID: runID, pid: getpid(), command: command,
                               startedAt: ArchiveName.iso8601(Date()), phase: "preflight")
        try save()
    }

    package init(path: String, record: JournalRecord) {
        self.path = path
        self.record = record
    }

    public func update(_ change: (inout JournalRecord) -> Void) throws {
        change(&record)
        try save()
    }

    private func save() throws {
        let data = try JSONEncoder().encode(record)
        do {
            try AtomicFile.write(Array(data), to: path, mode: 0o600)
        } catch {
            throw BackupError.failed("cannot write the state journal \(path): \(error)")
        }
    }

    /// The run ended and left nothing behind.
    public func close() {
        _ = unlink(path)
    }

    /// Journals of runs whose process is gone.
    public static func leftovers(stateDir: String) -> [RunJournal] {
        let dir = stateDir + "/runs"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return [] }
        return names.filter { $0.hasSuffix(".json") }.sorted().compactMap { n in
            let p = dir + "/" + n
            guard let d = FileManager.default.contents(atPath: p),
                  let r = try? JSONDecoder().decode(JournalRecord.self, from: d) else { return nil }
            if ProcessIdentity.isRunning(pid: r.pid, startTime: r.pidStartTime) { return nil }  // still running
            return RunJournal(path: p, record: r)
        }
    }
}

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
