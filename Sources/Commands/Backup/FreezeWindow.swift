import Foundation
import MSBKit
import MSBSnapshot
import MSBDatabase
import MSBServices
import MSBArchive
import MSBPackages
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Before the window: the run's private folder, the passfile, the staging folder and the database
/// connections (only BEGIN and pg_export_snapshot() run inside the window). Returns the snapshots to take.
extension RunState {
    mutating package func prepare(_ pg: PostgresAdapter) throws -> [TakenSnapshot] {
        let dir = try PrivateDir.make(in: config.destination, name: ".msb-\(runID)")
        chmod(config.destination, 0o700)
        privateDir = dir
        try journal.update { $0.privateDir = dir.path; $0.phase = "prepare" }
        passfile = try target.writePassfile(in: dir.path, databases: plan.database.databases)
        if plan.items.contains(where: { $0.method == .copy }) {
            try FileManager.default.createDirectory(atPath: dir.path + "/staging", withIntermediateDirectories: false,
                                                    attributes: [.posixPermissions: 0o700])
        }
        pins = try pg.openConnections(plan.database, passfile: passfile)
        return plan.volumes.map { v in driver(for: v.method)!.plannedSnapshot(of: v, runID: runID) }
    }

    /// The window: MAAS frozen (or stopped), the volumes snapshotted, the database snapshot pinned,
    /// the small paths copied, MAAS thawed (or started) again. Each step timed; the services come
    /// back whatever fails, and a SIGINT/SIGTERM ends the window at its next step.
    mutating package func freezeWindow(pg: PostgresAdapter, planned: [TakenSnapshot]) async throws {
        let freezing = plan.quiesce == .freeze
        let units = plan.servicesQuiesced
        let (hold, resume) = freezing ? ("freeze", "thaw") : ("stop", "start")
        // Before the window: each volume's dirty data written out, so its snapshot flushes almost nothing.
        for path in planned.map(\.volume.livePath).uniqued() {
            try await timer.time("sync \(path)") { if let e = FileSystem.sync(path) { log(.warning, "warning: \(e)") } }
        }
        if !freezing {
            // Read now, not in the window; unreadable: every unit is started, as before.
            leftToOwner = (try? await services.leftToOwners(units)) ?? [:]
            for (u, o) in leftToOwner.sorted(by: { $0.key < $1.key }) {
                log(.info, "\(u) is left to \(o) after the stop: bound to it but not ordered after it, it would race its start; \(o) starts it once it has written its configuration")
            }
        }
        if !units.isEmpty, let exe = pipeline.options.guardExecutable {
            guardian = try await DeadManGuard.arm(executable: exe, services: units, thaw: freezing,
                                                  timeoutSeconds: config.windowTimeout, runID: runID)
        }
        try journal.update {
            if freezing { $0.frozenServices = units } else { $0.stoppedServices = units }
            $0.snapshots = planned; $0.phase = "window"
        }
        let window = Stopwatch()
        self.window = window
        do {
            if freezing { frozen = units } else { stopped = units }
            servicesDown = true
            try await timer.time("\(hold)_services") {
                if freezing { try await services.freeze(units) } else { try await services.stop(units) }
            }
            try windowStep(hold)
            for s in planned {
                snapshots.append(s)
                try await timer.time("snapshot \(s.volume.livePath)") { try driver(for: s.volume.method)!.create(s) }
            }
            try windowStep("snapshot")
            // The database is pinned before the small paths are copied: the image rows of the
            // pinned snapshot say which image files the copy (and the archive) leaves out.
            try await timer.time("pin_database_snapshot") { try pg.pinAll(pins) }
            try readImageRows(pg)
            try windowStep("pin")
            for item in plan.items where item.method == .copy {
                try await timer.time("copy \(item.path)") { try await copyIntoStaging(item) }
            }
            try windowStep("copy")
            try checkWindowTimeout(window)
            if !plan.stopForWholeRun {
                try await timer.time("\(resume)_services") { try await resumeServices() }
                downtimeMs = window.elapsedMs.ms2
            }
        } catch {
            try? await resumeServices()  // services first, whatever failed
            if downtimeMs == 0 { downtimeMs = window.elapsedMs.ms2 }
            throw error
        }
        try FaultPoint.hit(resume)
        log(.info, "window closed: MAAS was \(freezing ? "frozen" : "stopped") \(String(format: "%.0f", downtimeMs)) ms; archiving from the snapshots")
    }

    /// Between two steps of the window: a test's fault point, then a pending SIGINT/SIGTERM ends the
    /// window (the caller's catch thaws or starts MAAS before the run cleans up).
    package func windowStep(_ step: String) throws {
        try FaultPoint.hit(step)
        try Interruption.check()
    }
}

extension Array where Element: Hashable {
    /// The elements in order, each once.
    package func uniqued() -> [Element] {
        var seen = Set<Element>()
        return filter { seen.insert($0).inserted }
    }
}
