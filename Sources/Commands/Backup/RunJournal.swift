import Foundation
import MSBKit
import MSBSnapshot
import MSBDatabase
import MSBServices
import MSBArchive
import MSBPackages
import MSBRegion
import MSBPrune
#if canImport(Glibc)
import Glibc
#endif

/// What a run changed, written before each change to <state_dir>/runs/<run id>.json, so that a
/// killed run's leftovers can be found (`status`) and undone (`recover`). Removed when the run ends cleanly.
public struct JournalRecord: JournalEntry {
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

/// A backup's journal, in `<state_dir>/runs`.
public typealias RunJournal = Journal<JournalRecord>

extension Journal where Entry == JournalRecord {
    public convenience init(stateDir: String, runID: String, command: String) throws {
        try self.init(folder: stateDir + "/runs", record: JournalRecord(runID: runID, pid: getpid(), command: command,
                                                                         startedAt: ArchiveName.iso8601(Date()), phase: "preflight"),
                      what: "state journal")
    }

    /// Journals of backups whose process is gone.
    public static func leftovers(stateDir: String) -> [RunJournal] { leftovers(folder: stateDir + "/runs", what: "state journal") }
}
