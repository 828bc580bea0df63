import Foundation
import MSBKit
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Copies local archives (`NAME.tar.gz`) into a remote repository as their uncompressed tar
/// stream (`/NAME.tar`), so restic deduplicates one day's archive against the last. The gzip is
/// decompressed on its own thread into a pipe that restic reads; if the archive turns out damaged
/// or truncated, restic is interrupted before it sees the end of the stream and saves nothing.
public struct ResticCopier: Sendable {
    /// Every copy carries this tag; retention only ever looks at snapshots with it.
    public static let toolTag = "maas-snapshot-backup"

    public let repository: any RemoteRepository

    public init(repository: any RemoteRepository) {
        self.repository = repository
    }

    public struct CopyResult: Sendable, Equatable {
        public var snapshotID: String
        /// The file name in the snapshot (`NAME.tar`).
        public var fileName: String
        public var tags: [String]
        public var compressedBytes: Int64
        public var uncompressedBytes: Int64
        public var durationMs: Double
    }

    /// `NAME` of `/path/NAME.tar.gz`.
    public static func name(ofArchive path: String) throws -> String {
        let base = (path as NSString).lastPathComponent
        guard base.hasSuffix(".tar.gz"), base.count > 7 else {
            throw BackupError.failed("\(path) is not a .tar.gz archive", hint: "copy an archive made by maas-snapshot-backup")
        }
        return String(base.dropLast(7))
    }

    /// The tag that tells a copy's kind in the repository (the copy command maps a backup's
    /// reason to it: the daily unit's `scheduled` is `timer`).
    public enum Kind: String, Sendable, CaseIterable {
        case manual, timer
        case preUpgrade = "pre-upgrade"
    }

    /// `maas-snapshot-backup`, the kind (manual, timer or pre-upgrade), `maas-VERSION`, `archive=NAME`.
    public static func tags(kind: Kind, maasVersion: String?, archiveName: String) -> [String] {
        var tags = [toolTag, kind.rawValue]
        if let v = maasVersion.map(clean), !v.isEmpty { tags.append("maas-" + v) }
        tags.append("archive=" + clean(archiveName))
        return tags
    }

    /// A duration in milliseconds, rounded to 0.01 ms.
    static func milliseconds(_ d: Duration) -> Double {
        let (s, atto) = d.components
        return ((Double(s) * 1000 + Double(atto) / 1e15) * 100).rounded() / 100
    }

    static func clean(_ s: String) -> String {
        String(s.map { $0 == "," || $0.isWhitespace || $0.isNewline ? "_" : $0 })
    }

    /// Copies `archive`; when the repository is locked (a stale lock of a killed run), runs
    /// `restic unlock` once and copies again.
    public func copy(archive: String, kind: Kind, maasVersion: String?, host: String) async throws -> CopyResult {
        do {
            return try await copyOnce(archive: archive, kind: kind, maasVersion: maasVersion, host: host)
        } catch let e as BackupError where e.code == .locked {
            try await repository.unlock()
            return try await copyOnce(archive: archive, kind: kind, maasVersion: maasVersion, host: host)
        }
    }

    func copyOnce(archive: String, kind: Kind, maasVersion: String?, host: String) async throws -> CopyResult {
        let started = ContinuousClock.now
        let name = try ResticCopier.name(ofArchive: archive)
        let tags = ResticCopier.tags(kind: kind, maasVersion: maasVersion, archiveName: name)
        let input = open(archive, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard input >= 0 else {
            throw BackupError.failed("cannot open \(archive): \(Errno.last.description)", hint: "check that the archive exists")
        }
        defer { close(input) }
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else {
            throw BackupError.failed("cannot make a pipe for restic: \(Errno.last.description)")
        }
        // Neither end may leak into restic (or another child) beyond its stdin: the write end
        // held open elsewhere would keep restic from ever seeing the end of the stream.
        _ = fcntl(ends[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(ends[1], F_SETFD, FD_CLOEXEC)
        // A reader that goes away gives the writer EPIPE, not a signal that ends this process.
        signal(SIGPIPE, SIG_IGN)
        let pump = Pump(input: input, output: ends[1], archive: archive)
        defer { pump.closeOutputIfOpen() }
        let id = try await repository.backup(fromTarStream: FileDescriptor(rawValue: ends[0]), name: name, tags: tags, host: host,
                                             feed: { try await pump.run() })
        return CopyResult(snapshotID: id, fileName: name + ".tar", tags: tags, compressedBytes: pump.counts.compressed,
                          uncompressedBytes: pump.counts.uncompressed,
                          durationMs: ResticCopier.milliseconds(ContinuousClock.now - started))
    }

    /// The decompressing writer thread and the pipe's write end. The end is closed by the thread
    /// only after the whole archive went through (restic then sees EOF and saves the snapshot);
    /// after a failure it stays open until restic has been interrupted and has exited.
    final class Pump: @unchecked Sendable {
        let input: Int32, archive: String
        private let lock = NSLock()
        private var output: Int32
        private var _counts = GzipToPipe.Counts()

        init(input: Int32, output: Int32, archive: String) {
            self.input = input
            self.output = output
            self.archive = archive
        }

        var counts: GzipToPipe.Counts { lock.withLock { _counts } }

        func run() async throws {
            let out = lock.withLock { output }
            try await withCheckedThrowingContinuation { (cont: CheckedContinuation<Void, any Error>) in
                let t = Thread { [self] in
                    do {
                        let c = try GzipToPipe.pump(from: input, to: out, archive: archive)
                        lock.withLock { _counts = c }
                        closeOutputIfOpen()
                        cont.resume()
                    } catch {
                        cont.resume(throwing: error)
                    }
                }
                t.name = "msb-restic-gunzip"
                t.start()
            }
        }

        func closeOutputIfOpen() {
            lock.withLock {
                if output >= 0 { close(output); output = -1 }
            }
        }
    }

    // MARK: retention

    /// Applies `retention` to this host's copies (snapshots tagged `maas-snapshot-backup`), then
    /// prunes when something was forgotten. Returns what was forgotten.
    @discardableResult
    public func applyRetention(_ retention: RemoteRetention, host: String, now: Date = Date()) async throws -> [RemoteSnapshot] {
        let mine = try await repository.snapshots(tags: [ResticCopier.toolTag]).filter { $0.hostname == host }
        let plan = RemoteRetention.plan(mine, retention: retention, now: now)
        guard !plan.remove.isEmpty else { return [] }
        try await repository.forget(snapshotIDs: plan.remove.map(\.id))
        try await repository.prune()
        return plan.remove
    }
}

/// How many copies the repository keeps (config `remote.retention`, defaulting to the local one):
/// the newest `keep` ordinary copies, the newest `keepPreUpgrade` pre-upgrade copies, none older
/// than `maxAgeDays` (0: no limit); the newest copy and the newest pre-upgrade copy always stay.
public struct RemoteRetention: Sendable, Equatable, Codable {
    public var keep: Int
    public var keepPreUpgrade: Int
    public var maxAgeDays: Int

    public init(keep: Int, keepPreUpgrade: Int, maxAgeDays: Int) {
        self.keep = keep
        self.keepPreUpgrade = keepPreUpgrade
        self.maxAgeDays = maxAgeDays
    }

    public static func plan(_ snapshots: [RemoteSnapshot], retention: RemoteRetention, now: Date = Date())
        -> (keep: [RemoteSnapshot], remove: [RemoteSnapshot]) {
        let sorted = snapshots.sorted { $0.time != $1.time ? $0.time > $1.time : $0.id > $1.id }
        let isPre = { (s: RemoteSnapshot) in s.tags.contains("pre-upgrade") }
        var protected = Set<String>()
        if let n = sorted.first { protected.insert(n.id) }
        if let p = sorted.first(where: isPre) { protected.insert(p.id) }
        var ordinary = 0, pre = 0
        var keep: [RemoteSnapshot] = [], remove: [RemoteSnapshot] = []
        for s in sorted {
            let tooOld = retention.maxAgeDays > 0 && now.timeIntervalSince(s.time) > TimeInterval(retention.maxAgeDays) * 86400
            let keepIt: Bool
            if isPre(s) {
                pre += 1
                keepIt = protected.contains(s.id) || (!tooOld && pre <= retention.keepPreUpgrade)
            } else {
                ordinary += 1
                keepIt = protected.contains(s.id) || (!tooOld && ordinary <= retention.keep)
            }
            if keepIt { keep.append(s) } else { remove.append(s) }
        }
        return (keep, remove)
    }
}
