import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What every journal records about its run's process.
public protocol JournalEntry: Codable, Sendable {
    var runID: String { get }
    var pid: Int32 { get }
    /// /proc/<pid>/stat's start time: with `pid`, it names the run's process even after the PID is reused.
    var pidStartTime: UInt64? { get }
}

/// A run's journal: written (atomically, fsynced) before each change the run makes to
/// `<folder>/<run id>.json`, so that a killed run's leftovers can be found (`status`) and undone
/// (`recover`). Removed when the run ends cleanly. One type for backups and restores.
public final class Journal<Entry: JournalEntry>: @unchecked Sendable {
    public private(set) var record: Entry
    public let path: String
    /// For messages: "state journal", "restore journal".
    private let what: String

    /// A new journal for `record` in `folder` (made 0700 when missing).
    package init(folder: String, record: Entry, what: String) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        path = folder + "/\(record.runID).json"
        self.record = record
        self.what = what
        try save()
    }

    package init(path: String, record: Entry, what: String) {
        self.path = path
        self.record = record
        self.what = what
    }

    public func update(_ change: (inout Entry) -> Void) throws {
        change(&record)
        try save()
    }

    private func save() throws {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        do {
            try AtomicFile.write(Array(try e.encode(record)), to: path, mode: 0o600)
        } catch {
            throw BackupError.failed("cannot write the \(what) \(path): \(error)")
        }
    }

    /// The run ended and left nothing behind.
    public func close() { _ = unlink(path) }

    /// Journals in `folder` of runs whose process is gone.
    package static func leftovers(folder: String, what: String) -> [Journal<Entry>] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return [] }
        let d = JSONDecoder()
        return names.filter { $0.hasSuffix(".json") }.sorted().compactMap { n in
            let p = folder + "/" + n
            guard let data = FileManager.default.contents(atPath: p), let r = try? d.decode(Entry.self, from: data) else { return nil }
            if ProcessIdentity.isRunning(pid: r.pid, startTime: r.pidStartTime) { return nil }  // still running
            return Journal(path: p, record: r, what: what)
        }
    }
}
