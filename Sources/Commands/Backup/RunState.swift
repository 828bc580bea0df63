import Foundation
import MSBKit
import MSBSnapshot
import MSBDatabase
import MSBServices
import MSBArchive
import MSBPackages
import MSBRegion
import MSBExpire
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// One backup run after preflight: everything it made, so that any failure can undo it.
package struct RunState {
    package let pipeline: BackupPipeline
    package let plan: BackupPlan
    package let runID: String
    package let journal: RunJournal
    package let target: PostgresTarget

    package var config: Config { pipeline.config }
    package var services: any ServiceManager { pipeline.services }

    package var privateDir: PrivateDir?
    package var passfile: String?
    package var pins: [PinnedSnapshot] = []
    package var snapshots: [TakenSnapshot] = []
    package var stopped: [String] = []
    package var servicesDown = false
    package var guardian: DeadManGuard?
    package var partialPath: String?
    package var steps: [Manifest.WindowStep] = []
    package var downtimeMs: Double = 0

    package init(pipeline: BackupPipeline, plan: BackupPlan, runID: String, journal: RunJournal, target: PostgresTarget) {
        self.pipeline = pipeline
        self.plan = plan
        self.runID = runID
        self.journal = journal
        self.target = target
    }

    package func driver(for m: SnapshotMethod) -> (any SnapshotDriver)? { pipeline.drivers.first { $0.method == m } }

    /// Throws the first snapshot's invalidity (an overflowed LVM snapshot, a full thin pool).
    package func validateSnapshots() throws {
        for s in snapshots { try driver(for: s.volume.method)!.validate(s) }
    }

    mutating package func execute(clock: Stopwatch) async throws -> BackupResult {
        let pg = PostgresAdapter(target: target)
        let dir = try PrivateDir.make(in: config.destination, name: ".msb-\(runID)")
        chmod(config.destination, 0o700)
        privateDir = dir
        try journal.update { $0.privateDir = dir.path; $0.phase = "prepare" }
        passfile = try target.writePassfile(in: dir.path, databases: plan.database.databases)
        if plan.items.contains(where: { $0.method == .copy }) {
            try FileManager.default.createDirectory(atPath: dir.path + "/staging", withIntermediateDirectories: false,
                                                    attributes: [.posixPermissions: 0o700])
        }
        // Connect before the window: only BEGIN and pg_export_snapshot() run inside it.
        pins = try pg.openConnections(plan.database, passfile: passfile)
        let planned = plan.volumes.map { v in driver(for: v.method)!.plannedSnapshot(of: v, runID: runID) }

        // ---- The freeze window ----
        if !plan.servicesToStop.isEmpty, let exe = pipeline.options.guardExecutable {
            guardian = try await DeadManGuard.arm(executable: exe, services: plan.servicesToStop,
                                                  timeoutSeconds: config.windowTimeout, runID: runID)
        }
        try journal.update { $0.stoppedServices = plan.servicesToStop; $0.snapshots = planned; $0.phase = "window" }
        let window = Stopwatch()
        func step(_ name: String, _ t: Stopwatch) { steps.append(.init(step: name, ms: t.elapsedMs.ms2)) }
        do {
            var t = Stopwatch()
            stopped = plan.servicesToStop
            servicesDown = true
            try await services.stop(plan.servicesToStop)
            step("stop_services", t)
            try FaultPoint.hit("stop")

            for s in planned {
                t = Stopwatch()
                snapshots.append(s)
                try driver(for: s.volume.method)!.create(s)
                step("snapshot \(s.volume.livePath)", t)
            }
            try FaultPoint.hit("snapshot")

            for item in plan.items where item.method == .copy {
                t = Stopwatch()
                try await copyIntoStaging(item)
                step("copy \(item.path)", t)
            }
            try FaultPoint.hit("copy")

            t = Stopwatch()
            try pg.pinAll(pins)
            step("pin_database_snapshot", t)
            try FaultPoint.hit("pin")
            try checkWindowTimeout(window)

            if !plan.stopForWholeRun {
                t = Stopwatch()
                try await startServices()
                step("start_services", t)
                downtimeMs = window.elapsedMs.ms2
            }
        } catch {
            // Services first, whatever failed.
            try? await startServices()
            if downtimeMs == 0 { downtimeMs = window.elapsedMs.ms2 }
            throw error
        }
        try FaultPoint.hit("start")
        log("window closed: MAAS was stopped \(String(format: "%.0f", downtimeMs)) ms; archiving from the frozen data")

        // ---- The archive, while MAAS runs ----
        try journal.update { $0.phase = "archive" }
        for i in snapshots.indices {
            do {
                snapshots[i] = try driver(for: snapshots[i].volume.method)!.expose(snapshots[i], privateDir: dir.path)
            } catch {
                // An LVM snapshot that overflowed already cannot be mounted (EIO): say so.
                try validateSnapshots()
                throw error
            }
        }
        let snapshotsNow = snapshots
        try journal.update { $0.snapshots = snapshotsNow }

        let host = Self.hostName()
        let name = uniqueArchiveName(host: host)
        let final = config.destination + "/" + name
        let partial = final + ".partial"
        partialPath = partial
        try journal.update { $0.partialArchive = partial }

        // The dump streams through a pipe into its own compressor (a raw deflate spool, 0600)
        // while the files are archived; it is spliced into the archive after them.
        let level = config.compressionLevel, threads = config.compressionThreads
        let spoolBox = MemberSpoolBox(try MemberSpool(path: dir.path + "/dump.sql.spool", level: level, threads: threads))
        signal(SIGPIPE, SIG_IGN)  // a failed spool closes the pipe: pg_dump and our writes get EPIPE, not a signal
        // Close-on-exec at once (no other program is being started now): only pg_dump's stdout holds it.
        let (readEnd, writeEnd) = try FileDescriptor.pipe()
        _ = fcntl(readEnd.rawValue, F_SETFD, FD_CLOEXEC)
        _ = fcntl(writeEnd.rawValue, F_SETFD, FD_CLOEXEC)
        let pinsNow = pins
        let dbPlan = plan.database
        let pass = passfile
        let progress = pipeline.options.progress
        let total = plan.items.reduce(Int64(0)) { $0 + $1.sizeBytes } + plan.database.sizeBytes
        let sum = ProgressSum(total: total, report: progress)
        let dumpTask = Task {
            defer { try? writeEnd.close() }  // EOF for the spool, however the dump ends
            try await pg.dump(dbPlan, pins: pinsNow, to: writeEnd, passfile: pass)
        }
        let spoolTask = Task {
            try await Blocking.run { () throws -> MemberSpool.Result in
                defer { try? readEnd.close() }
                try spoolBox.spool.drain(fd: readEnd.rawValue, checkInterrupted: { try Interruption.check() },
                                         onProgress: progress == nil ? nil : { sum.set(dump: $0) })
                return try spoolBox.spool.finish()
            }
        }

        let sources = plan.items.map { item -> (String, String) in (sourcePath(item, stagingRoot: dir.path + "/staging"), pipeline.member(of: item.livePath)) }
        let skip = pipeline.skipper()
        // Row counts and the schema head, in the same pinned snapshots as the dump, also concurrently.
        let maasDB = target.maasDatabase
        let countsTask = Task { () throws -> DatabaseFacts in
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
        var files = builderBox.1
        let counts = facts.counts, head = facts.head, ids = facts.ids
        pins.forEach { $0.release() }
        pins = []
        try FaultPoint.hit("dump")

        // Any snapshot that became invalid while we read it (LVM COW overflow) spoils the archive.
        try validateSnapshots()

        let now = Date()
        let dumpHeader = EntryHeaderFactory.file("dump.sql", size: 0, mtime: Int64(now.timeIntervalSince1970))
        let dumpRecord = try await Blocking.run { try builder.addSpooled(spoolBox.spool, header: dumpHeader) }

        let packages = await InstalledPackages.installed(root: config.root)
        var saved: [String: String]?, savedSums: [String: String]?
        if !pipeline.options.debsToSave.isEmpty {
            (saved, savedSums) = try saveDebs(pipeline.options.debsToSave, archiveName: name)
        }
        var manifest = Manifest(
            host: host, createdAt: ArchiveName.iso8601(now), reason: pipeline.options.reason,
            snapshotMethod: plan.methodSummary, root: config.root,
            paths: plan.items.map { .init(path: $0.path, method: $0.method, volume: $0.volume?.identity) },
            exclude: config.exclude, maasPackages: packages,
            maasVersion: packages["maas-region-controller"] ?? packages["maas"] ?? packages["maas-rack-controller"],
            database: .init(serverVersion: plan.database.serverVersion, scope: target.scope.rawValue,
                            databases: plan.database.databases, maasDatabase: target.maasDatabase,
                            snapshotIDs: ids, schemaHead: head, rowCounts: counts),
            window: .init(servicesStopped: stopped, downtimeMs: downtimeMs, steps: steps),
            files: files, dump: dumpRecord, savedDebs: saved, savedDebsSha256: savedSums)
        (manifest.maasId, manifest.otherRegions, manifest.vaultUrl) = (plan.maasId, plan.otherRegions.isEmpty ? nil : plan.otherRegions, plan.vaultUrl)
        files = []
        let manifestBytes = try manifest.encoded()
        try await Blocking.run {
            try builder.addBytes(manifestBytes, header: EntryHeaderFactory.file("manifest.json", size: 0, mtime: Int64(now.timeIntervalSince1970)))
            try builder.finish()
        }
        try FaultPoint.hit("manifest")
        try Interruption.check()

        if plan.stopForWholeRun {
            let t = Stopwatch()
            try await startServices()
            steps.append(.init(step: "start_services", ms: t.elapsedMs.ms2))
            downtimeMs = Stopwatch.since(window)
        }

        // Finish: the sidecar manifest, then the rename that makes the archive complete.
        let sidecar = final + ".manifest.json"
        do {
            try AtomicFile.write(manifestBytes, to: sidecar, mode: 0o600)
        } catch {
            throw BackupError(.cantCreate, "cannot write \(sidecar): \(error)")
        }
        guard rename(partial, final) == 0 else {
            let e = String(cString: strerror(errno))
            unlink(sidecar)
            throw BackupError(.cantCreate, "cannot rename \(partial): \(e)")
        }
        partialPath = nil
        chmod(final, 0o600)
        Self.fsyncDir(config.destination)

        await cleanup()
        let size = Int64((try? FileManager.default.attributesOfItem(atPath: final)[.size] as? Int64) ?? 0)
        let result = BackupResult(status: "ok", archive: final, sizeBytes: size, snapshotMethod: plan.methodSummary,
                                  servicesStopped: stopped, downtimeMs: downtimeMs, window: steps,
                                  durationMs: clock.elapsedMs.ms2, reason: pipeline.options.reason, dryRun: false, plan: nil)
        return result
    }

    package func log(_ s: String) { pipeline.log(s) }

    package func checkWindowTimeout(_ w: Stopwatch) throws {
        if w.elapsedMs > Double(config.windowTimeout) * 1000 {
            throw BackupError.failed("the freeze window overran window_timeout (\(config.windowTimeout) s); services started again")
        }
    }

    mutating package func startServices() async throws {
        guard servicesDown else { return }
        try await services.start(Array(stopped.reversed()))
        servicesDown = false
        try? journal.update { $0.servicesRestarted = true }
        await guardian?.disarm()
        guardian = nil
    }

    package func sourcePath(_ item: BackupPlan.Item, stagingRoot: String) -> String {
        switch item.method {
        case .copy: return stagingRoot + "/" + pipeline.member(of: item.livePath)
        case .none: return item.livePath
        case .btrfs, .lvm:
            guard let v = item.volume, let s = snapshots.first(where: { $0.volume == v }), let root = s.readablePath else {
                return item.livePath
            }
            let rel = String(item.livePath.dropFirst(v.livePath == "/" ? 0 : v.livePath.count))
            return root + (rel.hasPrefix("/") || rel.isEmpty ? rel : "/" + rel)
        }
    }

    package func copyIntoStaging(_ item: BackupPlan.Item) async throws {
        guard let dir = privateDir else { return }
        let dest = dir.path + "/staging/" + pipeline.member(of: item.livePath)
        try FileManager.default.createDirectory(atPath: (dest as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        guard let cp = Command.find("cp") else { throw BackupError.unavailable("cp was not found") }
        let r = try await Command.run(cp, ["-a", "--no-target-directory", "--", item.livePath, dest])
        guard r.succeeded else { throw BackupError.failed("copying \(item.livePath) in the window failed: \(r.lastErrorLine)") }
    }

    package func uniqueArchiveName(host: String) -> String {
        var d = Date()
        while true {
            let n = ArchiveName.make(host: host, date: d)
            let p = config.destination + "/" + n
            if !FileManager.default.fileExists(atPath: p) && !FileManager.default.fileExists(atPath: p + ".partial") { return n }
            d = d.addingTimeInterval(1)
        }
    }

    /// Copies the .debs beside the archive; returns package -> `<name>.debs/<file>` and package -> SHA-256.
    package func saveDebs(_ debs: [String: String], archiveName: String) throws -> (paths: [String: String], sha256: [String: String]) {
        let folder = config.destination + "/" + archiveName.replacingOccurrences(of: ArchiveName.suffix, with: ".debs")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        var out: [String: String] = [:], sums: [String: String] = [:]
        for (pkg, src) in debs.sorted(by: { $0.key < $1.key }) {
            let dst = folder + "/" + (src as NSString).lastPathComponent
            _ = unlink(dst)
            sums[pkg] = try DebCopy.copy(src, to: dst)
            out[pkg] = (folder as NSString).lastPathComponent + "/" + (src as NSString).lastPathComponent
        }
        return (out, sums)
    }

    /// Removes what the run made; on success nothing but the archive is left.
    mutating package func cleanup() async {
        pins.forEach { $0.release() }
        pins = []
        for s in snapshots.reversed() {
            do { try driver(for: s.volume.method)?.remove(s) } catch { log("warning: \(error)") }
        }
        snapshots = []
        privateDir?.remove()
        privateDir = nil
    }

    /// After a failure anywhere: services up, snapshots and mounts gone, no partial archive.
    mutating package func cleanupAfterFailure() async {
        if servicesDown { try? await startServices() }
        if servicesDown {
            // One more try; report loudly if it still fails.
            do { try await startServices() } catch { log("CRITICAL: could not start \(stopped.joined(separator: " ")): \(error); start them by hand") }
        }
        await guardian?.disarm()
        if let p = partialPath { _ = unlink(p); partialPath = nil }
        await cleanup()
    }

    static package func hostName() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, buf.count - 1)
        let h = String(cString: buf).split(separator: ".").first.map(String.init) ?? "localhost"
        return h.isEmpty ? "localhost" : h
    }

    static package func fsyncDir(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 { fsync(fd); close(fd) }
    }
}

extension Stopwatch {
    static package func since(_ w: Stopwatch) -> Double { w.elapsedMs.ms2 }
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

package enum EntryHeaderFactory {
    static package func file(_ path: String, size: Int64, mtime: Int64) -> EntryHeader {
        EntryHeader(path: path, kind: .file, permissions: 0o600, uid: 0, gid: 0, uname: "root", gname: "root",
                    size: size, mtime: mtime)
    }
}


