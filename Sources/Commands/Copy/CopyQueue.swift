import Foundation
import MSBRemote

/// What a copy run copies, decided from the catalog, the repository's snapshots and the copy
/// state alone (no I/O): the chosen archive, and the older ones a run missed or left pending.
package enum CopyQueue {
    /// An archive the destination holds, as the copy needs it.
    package struct Target: Sendable, Equatable {
        package var archive: String
        package var reason: String
        package var maasVersion: String?
        package var time: TimeInterval
        package init(archive: String, reason: String, maasVersion: String?, time: TimeInterval) {
            self.archive = archive
            self.reason = reason
            self.maasVersion = maasVersion
            self.time = time
        }
    }

    package struct Plan: Equatable {
        /// The repository's snapshots of this tool by the archive (base name) they are tagged with.
        package var byArchive: [String: [RemoteSnapshot]]
        /// Archives (base names) whose copy counts as done: the snapshot recorded when its copy
        /// finished, or without a record any snapshot, unless its copy was begun and never finished.
        package var present: Set<String>
        /// What to copy, in order: the older archives left pending or newer than the newest copied
        /// (oldest first), then the chosen one unless it is present.
        package var todo: [Target]
        /// The chosen archive's base name when it is present already.
        package var alreadyCopied: String?
    }

    /// `entries` newest first (the catalog's order); `snapshots` the repository's snapshots tagged
    /// with the tool's tag. In the repository: the snapshot recorded when its copy finished
    /// (CopyState.copied); without a record, any snapshot of it, unless its copy was begun and never
    /// finished here (pending): a copy cut off by SIGKILL may have left a snapshot of part of the tar.
    package static func plan(entries: [Target], chosen: Target, snapshots: [RemoteSnapshot], state: CopyState) -> Plan {
        var byArchive: [String: [RemoteSnapshot]] = [:]
        for snap in snapshots {
            if let n = snap.tagValue("archive") { byArchive[n, default: []].append(snap) }
        }
        let present = Set(byArchive.compactMap { n, snaps -> String? in
            if let id = state.copied[n] { return snaps.contains { $0.id.hasPrefix(id) || $0.shortID == id } ? n : nil }
            return state.pending.contains(n) ? nil : n
        })
        let newestPresent = entries.filter { present.contains(CopyPipeline.baseName($0.archive)) }.map(\.time).max()
        let pending = Set(state.pending)
        var todo: [Target] = []
        for e in entries.reversed() where e.archive != chosen.archive {
            let n = CopyPipeline.baseName(e.archive)
            if present.contains(n) { continue }
            if pending.contains(n) || (newestPresent.map { e.time > $0 } ?? false) { todo.append(e) }
        }
        var alreadyCopied: String?
        if present.contains(CopyPipeline.baseName(chosen.archive)) {
            alreadyCopied = CopyPipeline.baseName(chosen.archive)
        } else {
            todo.append(chosen)
        }
        return Plan(byArchive: byArchive, present: present, todo: todo, alreadyCopied: alreadyCopied)
    }
}
