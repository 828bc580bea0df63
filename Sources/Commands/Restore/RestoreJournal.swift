import Foundation
import MSBKit
import MSBSnapshot
import MSBDatabase
import MSBServices
import MSBArchive
import MSBPackages
import MSBRegion
#if canImport(Glibc)
import Glibc
#endif

/// A restore's (or rollback's) journal, written before each change to
/// `<state_dir>/restores/<run id>.json`: which services it stopped and how each folder was swapped,
/// so that `recover` can put the previous files back and start the services after a crash.
/// Removed when the run ends (successfully, or after its failure was undone).
public struct RestoreRecord: Sendable, Codable {
    public var runID: String
    public var pid: Int32
    /// /proc/<pid>/stat's start time: see JournalRecord.pidStartTime.
    public var pidStartTime: UInt64? = ProcessIdentity.startTime(getpid())
    public var command: String
    public var archive: String
    public var startedAt: String
    public var phase: String
    public var stoppedServices: [String] = []
    public var servicesRestarted = false
    /// "untouched", "loading" (new databases being created and loaded), "loaded", "checked",
    /// "swapping" (the rename transaction), "swapped", "restored" (final).
    public var database = "untouched"
    /// The names of each database's new copy, kept previous one and failed copy (nil: a journal of an older version).
    public var databases: [DatabaseNames]?
    public var swaps: [TreeSwap] = []
    /// True once the restored files are final (nothing to undo any more).
    public var filesFinal = false
    /// The run's private temporary folder (psql's messages, the passfile).
    public var privateDir: String?
}

public final class RestoreJournal: @unchecked Sendable {
    public private(set) var record: RestoreRecord
    public let path: String

    package init(stateDir: String, runID: String, command: String, archive: String) throws {
        let dir = stateDir + "/restores"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        path = dir + "/\(runID).json"
        record = RestoreRecord(runID: runID, pid: getpid(), command: command, archive: archive,
                               startedAt: ArchiveName.iso8601(Date()), phase: "prepare")
        try save()
    }

    package init(path: String, record: RestoreRecord) {
        self.path = path
        self.record = record
    }

    package func update(_ change: (inout RestoreRecord) -> Void) throws {
        change(&record)
        try save()
    }

    private func save() throws {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try e.encode(record)
        do {
            try AtomicFile.write(Array(data), to: path, mode: 0o600)
        } catch {
            throw BackupError.failed("cannot write the restore journal \(path): \(error)")
        }
    }

    package func close() { _ = unlink(path) }

    /// Journals of restores whose process is gone.
    public static func leftovers(stateDir: String) -> [RestoreJournal] {
        let dir = stateDir + "/restores"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return [] }
        let d = JSONDecoder()
        return names.filter { $0.hasSuffix(".json") }.sorted().compactMap { n in
            let p = dir + "/" + n
            guard let data = FileManager.default.contents(atPath: p), let r = try? d.decode(RestoreRecord.self, from: data) else { return nil }
            if ProcessIdentity.isRunning(pid: r.pid, startTime: r.pidStartTime) { return nil }  // still running
            return RestoreJournal(path: p, record: r)
        }
    }
}
