import Foundation
import MaasBackupCore
import Testing

/// What a copy run copies, from the catalog, the repository's snapshots and the copy state alone.
@Suite("copy queue")
struct CopyQueueTests {
    static func target(_ name: String, _ time: TimeInterval) -> CopyQueue.Target {
        .init(archive: "/var/backups/maas-snapshot-backup/\(name).tar.gz", reason: "manual", maasVersion: nil, time: time)
    }
    static func snapshot(_ id: String, of name: String, host: String = "h") -> RemoteSnapshot {
        .init(id: id + String(repeating: "0", count: 56), shortID: id, time: Date(timeIntervalSince1970: 0), hostname: host,
              tags: ["maas-snapshot-backup", "archive=\(name)"], paths: ["/\(name).tar"])
    }
    // The catalog's order: newest first.
    let c = target("c", 300), b = target("b", 200), a = target("a", 100)

    @Test("an empty repository: only the chosen archive, older ones are not back-filled")
    func emptyRepository() {
        let p = CopyQueue.plan(entries: [c, b, a], chosen: c, snapshots: [], state: CopyState())
        #expect(p.todo == [c])
        #expect(p.present.isEmpty && p.alreadyCopied == nil && p.byArchive.isEmpty)
    }

    @Test("archives newer than the newest copied one are copied first, oldest first; older ones are not")
    func missedNewerOnes() {
        let p = CopyQueue.plan(entries: [c, b, a], chosen: c, snapshots: [Self.snapshot("aaaaaaaa", of: "a")], state: CopyState())
        #expect(p.present == ["a"])
        #expect(p.todo == [b, c])
        let onlyNewest = CopyQueue.plan(entries: [c, b, a], chosen: c, snapshots: [Self.snapshot("bbbbbbbb", of: "b")], state: CopyState())
        #expect(onlyNewest.todo == [c], "a is older than the newest copy: left out")
    }

    @Test("a pending archive is copied again, and its unrecorded snapshot does not count")
    func pendingCopiedAgain() {
        var state = CopyState()
        state.pending = ["a"]
        let p = CopyQueue.plan(entries: [c, b, a], chosen: c, snapshots: [Self.snapshot("aaaaaaaa", of: "a")], state: state)
        #expect(p.present.isEmpty)
        #expect(p.todo == [a, c])
        #expect(p.byArchive["a"]?.count == 1)
    }

    @Test("a recorded copy counts only with its own snapshot")
    func recordedSnapshot() {
        var state = CopyState()
        state.copied = ["b": "bbbbbbbb"]
        let mine = CopyQueue.plan(entries: [c, b, a], chosen: c, snapshots: [Self.snapshot("bbbbbbbb", of: "b")], state: state)
        #expect(mine.present == ["b"] && mine.todo == [c])
        let other = CopyQueue.plan(entries: [c, b, a], chosen: c, snapshots: [Self.snapshot("ffffffff", of: "b")], state: state)
        #expect(other.present.isEmpty && other.todo == [c])
    }

    @Test("the chosen archive already in the repository is reported, not copied again")
    func chosenPresent() {
        let p = CopyQueue.plan(entries: [c, b, a], chosen: b, snapshots: [Self.snapshot("bbbbbbbb", of: "b")], state: CopyState())
        #expect(p.alreadyCopied == "b")
        #expect(p.todo == [c], "c is newer than the newest copy")
    }
}
