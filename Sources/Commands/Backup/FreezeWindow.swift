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

    /// The window: MAAS stopped, the volumes snapshotted, the small paths copied, the database
    /// snapshot pinned, MAAS started again. Each step timed; services are started whatever fails.
    mutating package func freezeWindow(pg: PostgresAdapter, planned: [TakenSnapshot]) async throws {
        if !plan.servicesToStop.isEmpty, let exe = pipeline.options.guardExecutable {
            guardian = try await DeadManGuard.arm(executable: exe, services: plan.servicesToStop,
                                                  timeoutSeconds: config.windowTimeout, runID: runID)
        }
        try journal.update { $0.stoppedServices = plan.servicesToStop; $0.snapshots = planned; $0.phase = "window" }
        let window = Stopwatch()
        self.window = window
        do {
            stopped = plan.servicesToStop
            servicesDown = true
            try await timer.time("stop_services") { try await services.stop(plan.servicesToStop) }
            try FaultPoint.hit("stop")
            for s in planned {
                snapshots.append(s)
                try await timer.time("snapshot \(s.volume.livePath)") { try driver(for: s.volume.method)!.create(s) }
            }
            try FaultPoint.hit("snapshot")
            for item in plan.items where item.method == .copy {
                try await timer.time("copy \(item.path)") { try await copyIntoStaging(item) }
            }
            try FaultPoint.hit("copy")
            try await timer.time("pin_database_snapshot") { try pg.pinAll(pins) }
            try FaultPoint.hit("pin")
            try checkWindowTimeout(window)
            if !plan.stopForWholeRun {
                try await timer.time("start_services") { try await startServices() }
                downtimeMs = window.elapsedMs.ms2
            }
        } catch {
            try? await startServices()  // services first, whatever failed
            if downtimeMs == 0 { downtimeMs = window.elapsedMs.ms2 }
            throw error
        }
        try FaultPoint.hit("start")
        log("window closed: MAAS was stopped \(String(format: "%.0f", downtimeMs)) ms; archiving from the frozen data")
    }
}
