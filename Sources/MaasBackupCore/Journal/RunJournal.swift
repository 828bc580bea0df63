import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What a run changed, written before each change to <state_dir>/runs/<run id>.json, so that a
/// killed run's leftovers can be found (`status`) and undone (`recover`). Removed when the run ends cleanly.
public struct JournalRecord: Sendable, Codable {
    public var runID: String
    public var pid: Int32
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

    init(path: String, record: JournalRecord) {
        self.path = path
        self.record = record
    }

    public func update(_ change: (inout JournalRecord) -> Void) throws {
        change(&record)
        try save()
    }

    private func save() throws {
        let data = try JSONEncoder().encode(record)
        let tmp = path + ".tmp"
        guard FileManager.default.createFile(atPath: tmp, contents: data, attributes: [.posixPermissions: 0o600]) else {
            throw BackupError.failed("cannot write the state journal \(tmp)")
        }
        guard rename(tmp, path) == 0 else {
            throw BackupError.failed("cannot write the state journal \(path): \(String(cString: strerror(errno)))")
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
            if r.pid != getpid() && kill(r.pid, 0) == 0 && isSameTool(pid: r.pid) { return nil }  // still running
            return RunJournal(path: p, record: r)
        }
    }

    private static func isSameTool(pid: Int32) -> Bool {
        guard let cmd = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8) else { return false }
        return cmd.contains("maas-snapshot-backup")
    }
}
