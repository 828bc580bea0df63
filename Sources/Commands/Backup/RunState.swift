import Foundation
import MSBKit
import MSBSnapshot
import MSBDatabase
import MSBServices
import MSBArchive
import MSBPackages
import MSBRegion
import MSBPrune
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
    package var frozen: [String] = []
    /// Stopped units not started again here but left to the unit they are bound to (maas-dhcpd
    /// to maas-rackd: `UnitState.owner(among:)`), read before the window.
    package var leftToOwner: [String: String] = [:]
    /// Stopped or frozen, and not yet started or thawed.
    package var servicesDown = false
    package var guardian: DeadManGuard?
    package var partialPath: String?
    /// Times each step of the window (and the late start of a whole-run stop).
    package let timer: StepTimer
    package var steps: [Manifest.WindowStep] { timer.steps }
    /// From the stop (freeze) to the start (thaw) (set by the window).
    package var window: Stopwatch?
    package var downtimeMs: Double = 0
    /// This host's signing key (loaded, or made, once preflight passed): signs manifest.json.
    package var signingKey: HostKey?
    /// The image files of the pinned snapshot (nil: no image store, MAAS 3.4) and the members left out.
    package var imageFiles: [BootImageFile]?
    package var imagesLeftOut: Set<String> = []

    package init(pipeline: BackupPipeline, plan: BackupPlan, runID: String, journal: RunJournal, target: PostgresTarget) {
        self.pipeline = pipeline
        self.plan = plan
        self.runID = runID
        self.journal = journal
        self.target = target
        let log = pipeline.options.log
        self.timer = StepTimer { step in log?(.debug, String(format: "step %@: %.1f ms", step.step, step.ms)) }
    }

    package func driver(for m: SnapshotMethod) -> (any SnapshotDriver)? { pipeline.drivers.first { $0.method == m } }

    /// Throws the first snapshot's invalidity (an overflowed LVM snapshot, a full thin pool).
    package func validateSnapshots() throws {
        for s in snapshots { try driver(for: s.volume.method)!.validate(s) }
    }

    /// The run after preflight, in its four steps; on a throw the caller runs `cleanupAfterFailure`.
    mutating package func execute(clock: Stopwatch) async throws -> BackupResult {
        let pg = PostgresAdapter(target: target)
        log(.debug, "step prepare: private folder, passfile, database connections")
        let planned = try prepare(pg)
        log(.debug, "step window: \(plan.quiesce == .freeze ? "freeze" : "stop"), snapshot, pin, copy, \(plan.quiesce == .freeze ? "thaw" : "start")")
        try await freezeWindow(pg: pg, planned: planned)
        log(.debug, "step archive: files from the snapshots, pg_dump from the pinned snapshot")
        let archived = try await archiveStep(pg: pg)
        log(.debug, "step finish: manifest, signature, rename into place")
        return try await finish(archived, clock: clock)
    }

    package func log(_ level: LogLevel, _ s: String) { pipeline.log(level, s) }

    package func checkWindowTimeout(_ w: Stopwatch) throws {
        if w.elapsedMs > Double(config.windowTimeout) * 1000 {
            throw BackupError.failed("the freeze window overran window_timeout (\(config.windowTimeout) s); services \(frozen.isEmpty ? "started" : "thawed") again")
        }
    }

    /// Thaws the frozen services, or starts the stopped ones.
    mutating package func resumeServices() async throws {
        guard servicesDown else { return }
        if !frozen.isEmpty { try await services.thaw(frozen) }
        let toStart = stopped.reversed().filter { leftToOwner[$0] == nil }
        if !toStart.isEmpty { try await services.start(toStart) }
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
        try await copyFiltered(item.livePath, to: dest)
    }



    /// Removes what the run made; on success nothing but the archive is left.
    mutating package func cleanup() async {
        pins.forEach { $0.release() }
        pins = []
        for s in snapshots.reversed() {
            do { try driver(for: s.volume.method)?.remove(s) } catch { log(.warning, "warning: \(error)") }
        }
        snapshots = []
        privateDir?.remove()
        privateDir = nil
    }

    /// After a failure anywhere: services up, snapshots and mounts gone, no partial archive.
    mutating package func cleanupAfterFailure() async {
        if servicesDown { try? await resumeServices() }
        if servicesDown {
            // One more try; report loudly if it still fails.
            do { try await resumeServices() } catch {
                let verb = frozen.isEmpty ? "start" : "thaw"
                log(.critical, "CRITICAL: could not \(verb) \((frozen + stopped).joined(separator: " ")): \(error); the dead-man guard tries again, the journal is kept: `maas-snapshot-backup status` names them, `maas-snapshot-backup recover` \(verb)s them")
            }
        }
        // Still down: the guard stays armed (it thaws or starts them when this process ends or at
        // its timeout), and the caller keeps the journal for `status` and `recover`.
        if !servicesDown { await guardian?.disarm() }
        if let p = partialPath { _ = unlink(p); partialPath = nil }
        await cleanup()
    }

    static package func hostName() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, buf.count - 1)
        let h = String(cString: buf).split(separator: ".").first.map(String.init) ?? "localhost"
        return h.isEmpty ? "localhost" : h
    }

}

