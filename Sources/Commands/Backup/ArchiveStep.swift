import Foundation
import MSBKit
import MSBBackupSet
import MSBSnapshot
import MSBDatabase
import MSBServices
import MSBArchive
import MSBPackages
import LibArchive
import Streams
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// What the archive step wrote: the partial archive (files and dump.sql, no manifest yet) and
/// what the manifest needs.
package struct Archived {
    package var builder: ArchiveBuilder
    package var files: [FileRecord]
    package var dump: FileRecord
    package var facts: DatabaseFacts
    /// The manifest's `images` (nil: no image store in the database).
    package var images: BootImages?
    package var name: String
    package var final: String
    package var partial: String
    package var now: Date
}

/// After the window, while MAAS runs: the snapshots mounted, the files archived from them, and the
/// dump streamed from the pinned database snapshot into its own compressor at the same time.
extension RunState {
    mutating package func archiveStep(pg: PostgresAdapter) async throws -> Archived {
        guard let dir = privateDir else { throw BackupError.failed("the run has no private folder") }
        try journal.update { $0.phase = "archive" }
        try exposeSnapshots(privateDir: dir.path)
        let (name, final, partial) = try startPartial()

        // The dump streams through a pipe into its own compressor (a raw deflate spool, 0600)
        // while the files are archived; it is spliced into the archive after them.
        let level = config.compressionLevel, threads = config.compressionThreads
        let spoolBox = MemberSpoolBox(try MemberSpool(path: dir.path + "/dump.sql.spool", level: level, threads: threads))
        let progress = pipeline.options.progress
        let total = plan.items.reduce(Int64(0)) { $0 + $1.sizeBytes } + plan.database.sizeBytes
        let sum = ProgressSum(total: total, report: progress)
        let (dumpTask, spoolTask) = try startDump(pg: pg, into: spoolBox, sum: sum, reportProgress: progress != nil)

        let sources = plan.items.map { item -> (String, String) in (sourcePath(item, stagingRoot: dir.path + "/staging"), pipeline.member(of: item.livePath)) }
        let skip = pipeline.skipper(leftOut: imagesLeftOut)
        logImagesLeftOut()
        let countsTask = startFacts(pg: pg)
        let builderBox: (ArchiveBuilderBox, [FileRecord])
        let facts: DatabaseFacts
        do {
            builderBox = try await Blocking.run { () throws -> (ArchiveBuilderBox, [FileRecord]) in
                let b = try ArchiveBuilder(path: partial, level: level, threads: threads)
                b.checkInterrupted = { try Interruption.check() }
                if progress != nil { b.onProgress = { sum.set(files: $0) } }
                var records: [FileRecord] = []
                for (src, member) in sources { records += try b.addTree(source: src, member: member, skip: skip) }
                return (ArchiveBuilderBox(b), records)
            }
            try FaultPoint.hit("archive")
            facts = try await countsTask.value
            // The spool first: when it failed (the destination filled up), pg_dump's EPIPE is
            // only the consequence. It ends when the dump closes its end of the pipe.
            _ = try await spoolTask.value
            try await dumpTask.value
        } catch {
            // Stop pg_dump (swift-subprocess tears the child down on cancellation) before cleaning up;
            // its pipe then closes, which ends the spool's reader.
            dumpTask.cancel()
            countsTask.cancel()
            _ = try? await dumpTask.value
            _ = try? await countsTask.value
            _ = try? await spoolTask.value
            // A snapshot that overflowed while we read it fails reads with EIO: say so, not "read error".
            try validateSnapshots()
            throw error
        }
        let builder = builderBox.0.builder
        pins.forEach { $0.release() }
        pins = []
        try FaultPoint.hit("dump")

        // Any snapshot that became invalid while we read it (LVM COW overflow) spoils the archive.
        try validateSnapshots()

        let now = Date()
        let dumpHeader = EntryHeaderFactory.file("dump.sql", size: 0, mtime: Int64(now.timeIntervalSince1970))
        let dumpRecord = try await Blocking.run { try builder.addSpooled(spoolBox.spool, header: dumpHeader) }
        return Archived(builder: builder, files: builderBox.1, dump: dumpRecord, facts: facts,
                        images: manifestImages(records: builderBox.1), name: name, final: final, partial: partial, now: now)
    }

    /// Each snapshot mounted (or opened) under the private folder, recorded in the journal.
    private mutating func exposeSnapshots(privateDir: String) throws {
        for i in snapshots.indices {
            do {
                snapshots[i] = try driver(for: snapshots[i].volume.method)!.expose(snapshots[i], privateDir: privateDir)
            } catch {
                // An LVM snapshot that overflowed already cannot be mounted (EIO): say so.
                try validateSnapshots()
                throw error
            }
        }
        let snapshotsNow = snapshots
        try journal.update { $0.snapshots = snapshotsNow }
    }

    /// The archive's name, its final path and its `.partial` path, recorded in the journal before it is written.
    private mutating func startPartial() throws -> (name: String, final: String, partial: String) {
        let name = uniqueArchiveName(host: Self.hostName())
        let final = config.destination + "/" + name
        let partial = BackupFiles(archive: final).partial
        partialPath = partial
        try journal.update { $0.partialArchive = partial }
        return (name, final, partial)
    }

    /// pg_dump on the pinned snapshots, its output through a pipe into the spool's compressor: the
    /// two tasks (the spool's ends when pg_dump closes its end of the pipe).
    private func startDump(pg: PostgresAdapter, into spoolBox: MemberSpoolBox, sum: ProgressSum, reportProgress: Bool)
        throws -> (dump: Task<Void, any Error>, spool: Task<MemberSpool.Result, any Error>) {
        signal(SIGPIPE, SIG_IGN)  // a failed spool closes the pipe: pg_dump and our writes get EPIPE, not a signal
        // Close-on-exec at once (no other program is being started now): only pg_dump's stdout holds it.
        let (readEnd, writeEnd) = try FileDescriptor.pipe()
        _ = fcntl(readEnd.rawValue, F_SETFD, FD_CLOEXEC)
        _ = fcntl(writeEnd.rawValue, F_SETFD, FD_CLOEXEC)
        let pinsNow = pins
        let dbPlan = plan.database
        let pass = passfile
        let dumpTask = Task {
            defer { try? writeEnd.close() }  // EOF for the spool, however the dump ends
            try await pg.dump(dbPlan, pins: pinsNow, to: writeEnd, passfile: pass)
        }
        let spoolTask = Task {
            try await Blocking.run { () throws -> MemberSpool.Result in
                defer { try? readEnd.close() }
                try spoolBox.spool.drain(fd: readEnd.rawValue, checkInterrupted: { try Interruption.check() },
                                         onProgress: reportProgress ? { sum.set(dump: $0) } : nil)
                return try spoolBox.spool.finish()
            }
        }
        return (dumpTask, spoolTask)
    }

    /// Row counts and the schema head, in the same pinned snapshots as the dump, also concurrently.
    private func startFacts(pg: PostgresAdapter) -> Task<DatabaseFacts, any Error> {
        let pinsNow = pins
        let maasDB = target.maasDatabase
        return Task { () throws -> DatabaseFacts in
            try await Blocking.run {
                var facts = DatabaseFacts()
                for p in pinsNow {
                    facts.ids[p.database] = p.snapshotID
                    facts.counts[p.database] = try pg.rowCounts(p)
                    if p.database == maasDB { facts.head = try pg.schemaHead(p) }
                }
                return facts
            }
        }
    }

    /// The log line of the boot image files left out of the archive (images: in the config).
    private func logImagesLeftOut() {
        guard let files = imageFiles, !imagesLeftOut.isEmpty else { return }
        let out = BootImages.leftOut(files, mode: config.images)
        log(.info, "images: \(out.count) of \(files.count) boot image file(s) left out (\(Human.bytes(files.filter { out.contains($0.name) }.reduce(0) { $0 + $1.size }))), images: \(config.images.rawValue); MAAS downloads synced ones again")
    }
}

/// What is read from the pinned snapshots besides the dump.
package struct DatabaseFacts: Sendable {
    package var counts: [String: [String: Int64]] = [:]
    package var head = SchemaHead()
    package var ids: [String: String] = [:]
}

/// Box so an ArchiveBuilder can cross from its worker thread back to the task.
final package class ArchiveBuilderBox: @unchecked Sendable {
    package let builder: ArchiveBuilder
    package init(_ b: ArchiveBuilder) { builder = b }
}

/// The dump's spool, handed to the thread that fills it and then, once that thread is done
/// (awaited), to the one that splices it: never used by two threads at once.
final package class MemberSpoolBox: @unchecked Sendable {
    package let spool: MemberSpool
    package init(_ s: MemberSpool) { spool = s }
}

/// Archive progress from two threads (the files, the dump): reports their sum, one call at a time.
final package class ProgressSum: @unchecked Sendable {
    private let lock = NSLock()
    private var files: UInt64 = 0, dump: UInt64 = 0
    private let total: Int64
    private let report: (@Sendable (Int64, Int64) -> Void)?
    package init(total: Int64, report: (@Sendable (Int64, Int64) -> Void)?) {
        self.total = total
        self.report = report
    }
    package func set(files n: UInt64) { lock.withLock { files = n; report?(Int64(files + dump), total) } }
    package func set(dump n: UInt64) { lock.withLock { dump = n; report?(Int64(files + dump), total) } }
}

import LibArchive
import Streams

package enum EntryHeaderFactory {
    static package func file(_ path: String, size: Int64, mtime: Int64) -> EntryHeader {
        EntryHeader(path: path, kind: .file, permissions: 0o600, uid: 0, gid: 0, uname: "root", gname: "root",
                    size: size, mtime: mtime)
    }
}


