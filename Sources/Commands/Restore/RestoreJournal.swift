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
public struct RestoreRecord: JournalEntry {
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
    public var database = DatabaseState.untouched
    /// The names of each database's new copy, kept previous one and failed copy (nil: a journal of an older version).
    public var databases: [DatabaseNames]?
    public var swaps: [TreeSwap] = []
    /// True once the restored files are final (nothing to undo any more).
    public var filesFinal = false
    /// The run's private temporary folder (psql's messages, the passfile).
    public var privateDir: String?
}

/// A restore's (or rollback's) journal, in `<state_dir>/restores`.
public typealias RestoreJournal = Journal<RestoreRecord>

extension Journal where Entry == RestoreRecord {
    package convenience init(stateDir: String, runID: String, command: String, archive: String) throws {
        try self.init(folder: stateDir + "/restores",
                      record: RestoreRecord(runID: runID, pid: getpid(), command: command, archive: archive,
                                            startedAt: ArchiveName.iso8601(Date()), phase: "prepare"),
                      what: "restore journal")
    }

    /// Journals of restores whose process is gone.
    public static func leftovers(stateDir: String) -> [RestoreJournal] { leftovers(folder: stateDir + "/restores", what: "restore journal") }
}
