import Foundation
import MSBKit
import MSBSnapshot
import MSBDatabase
import MSBServices
import MSBArchive
import MSBPackages
import MSBRegion
import MSBExpire
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
    /// The units the window froze (nil in journals of older versions).
    public var frozenServices: [String]? = nil
    /// The stopped units were started again, or the frozen ones thawed.
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

