import Foundation
import MSBKit
import MSBRemote
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// `remote-init`.
public struct RemoteInitReport: Sendable, Codable {
    public var status = "ok"
    public var repository: String
    /// False when the repository existed already (that is success too).
    public var created: Bool
}

/// One copy as `list --remote` shows it.
public struct RemoteCopyEntry: Sendable, Codable {
    public var id: String
    public var shortId: String
    public var time: String
    public var host: String
    public var archive: String?
    /// manual, timer or pre-upgrade.
    public var reason: String
    public var maasVersion: String?
    public var tags: [String]

    init(_ s: RemoteSnapshot) {
        id = s.id
        shortId = s.shortID
        time = ArchiveName.iso8601(s.time)
        host = s.hostname
        archive = s.tagValue("archive")
        reason = s.tags.first { ResticCopier.Kind(rawValue: $0) != nil } ?? "?"
        maasVersion = s.tags.first { $0.hasPrefix("maas-") && $0 != ResticCopier.toolTag }.map { String($0.dropFirst(5)) }
        tags = s.tags
    }
}

/// `list --remote`: the copies in the repository, newest first.
public struct RemoteListReport: Sendable, Codable {
    public var repository: String
    public var copies: [RemoteCopyEntry]
}

/// `verify --remote`.
public struct RemoteVerifyReport: Sendable, Codable {
    public var status = "ok"
    public var repository: String
    public var readDataSubset: String
    public var copies: Int
    public var storedBytes: Int64
    public var durationMs: Double

    package init(repository: String, readDataSubset: String, copies: Int, storedBytes: Int64, durationMs: Double) {
        self.repository = repository
        self.readDataSubset = readDataSubset
        self.copies = copies
        self.storedBytes = storedBytes
        self.durationMs = durationMs
    }
}

/// The remote half of `prune`.
public struct RemotePruneReport: Sendable, Codable {
    public var repository: String
    public var dryRun: Bool
    public var keep: Int
    public var keepPreUpgrade: Int
    public var maxAgeDays: Int
    public var host: String
    public var removed: [RemoteCopyEntry]
    public var kept: [RemoteCopyEntry]
}

/// A copy fetched from the repository into a local file, for `restore --from-remote`.
public struct FetchedCopy: Sendable, Codable {
    public var snapshotId: String
    public var archive: String
    /// The gzip archive rebuilt from the copy's tar (in a private 0700 folder).
    public var path: String
    public var tarBytes: Int64
    /// The host restic recorded for the copy.
    public var host: String
    public var durationMs: Double
}

/// The repository commands besides `copy`.
public struct RemoteOperations: Sendable {
    public let config: Config
    public let repository: any RemoteRepository

    public init(config: Config) throws {
        self.config = config
        self.repository = try CopyPipeline.repository(config)
    }

    public func initialize() async throws -> RemoteInitReport {
        let created = try await repository.initialize()
        return RemoteInitReport(repository: repository.displayName, created: created)
    }

    public func list() async throws -> RemoteListReport {
        let snaps = try await repository.snapshots(tags: [ResticCopier.toolTag])
        return RemoteListReport(repository: repository.displayName, copies: snaps.reversed().map(RemoteCopyEntry.init))
    }

    /// `restic check --read-data-subset` (5% by default: every run reads another random part).
    public func verify(readDataSubset: String = "5%") async throws -> RemoteVerifyReport {
        let clock = Stopwatch()
        try await repository.check(readDataSubset: readDataSubset)
        let stats = try await repository.stats()
        let copies = try await repository.snapshots(tags: [ResticCopier.toolTag]).count
        return RemoteVerifyReport(repository: repository.displayName, readDataSubset: readDataSubset, copies: copies,
                                  storedBytes: stats.totalSize, durationMs: clock.elapsedMs.ms2)
    }

    /// Remote retention (`remote.retention`, defaulting to the local one) on this host's copies:
    /// `restic forget` of the snapshots it removes, then `restic prune`.
    public func prune(dryRun: Bool) async throws -> RemotePruneReport {
        let remote = try CopyPipeline.remote(config)
        let retention = remote.retention(local: config.retention)
        let host = CopyPipeline.hostName()
        let mine = try await repository.snapshots(tags: [ResticCopier.toolTag]).filter { $0.hostname == host }
        let plan = RemoteRetention.plan(mine, retention: retention)
        var removed = plan.remove
        if !dryRun {
            removed = try await ResticCopier(repository: repository).applyRetention(retention, host: host)
        }
        let gone = Set(removed.map(\.id))
        return RemotePruneReport(repository: repository.displayName, dryRun: dryRun, keep: retention.keep, keepPreUpgrade: retention.keepPreUpgrade,
                                 maxAgeDays: retention.maxAgeDays, host: host, removed: removed.map(RemoteCopyEntry.init),
                                 kept: mine.filter { !gone.contains($0.id) }.reversed().map(RemoteCopyEntry.init))
    }

    /// The copy `snapshot` names: `latest` (this host's newest copy: restic's host is this host's
    /// name; another host's copy is only taken by its id or archive name), a snapshot id or its
    /// prefix, or an archive name.
    public func find(_ snapshot: String) async throws -> RemoteSnapshot {
        let snaps = try await repository.snapshots(tags: [ResticCopier.toolTag])
        if snapshot == "latest" {
            let host = CopyPipeline.hostName()
            guard let s = snaps.last(where: { $0.hostname == host }) else {
                let others = Set(snaps.map(\.hostname)).sorted()
                throw BackupError.unavailable("the repository \(repository.displayName) holds no copy made on this host (\(host))"
                                              + (others.isEmpty ? "" : "; it holds copies of \(others.joined(separator: ", "))"),
                                              hint: others.isEmpty ? "check remote.repository in the config"
                                                : "give another host's copy by its snapshot id (`maas-snapshot-backup list --remote`), with that host's key in trusted_keys")
            }
            return s
        }
        let name = snapshot.hasSuffix(ArchiveName.suffix) ? String(snapshot.dropLast(ArchiveName.suffix.count)) : snapshot
        let hits = snaps.filter { $0.id.hasPrefix(snapshot.lowercased()) || $0.tagValue("archive") == name }
        guard hits.count == 1, let s = hits.first else {
            throw BackupError(.usage, hits.isEmpty ? "no copy \(snapshot) in \(repository.displayName)" : "\(snapshot) names \(hits.count) copies",
                              hint: "run `maas-snapshot-backup list --remote` and give a snapshot id, or latest")
        }
        return s
    }

    /// Fetches `snapshot` into `folder` (which must exist, 0700): `restic dump` of its tar,
    /// gzipped again (restore reads a .tar.gz and checks it against the manifest inside).
    public func fetch(_ snapshot: String, into folder: String, log: LogSink? = nil) async throws -> FetchedCopy {
        let clock = Stopwatch()
        let s = try await find(snapshot)
        guard let name = s.tagValue("archive") ?? s.paths.first.map({ (($0 as NSString).lastPathComponent as NSString).deletingPathExtension }),
              !name.isEmpty, !name.contains("/"), !name.hasPrefix(".") else {
            throw BackupError.data("the copy \(s.shortID) carries no archive name", hint: "fetch it with restic dump")
        }
        log?(.info, "fetching copy \(s.shortID) (\(name), \(ArchiveName.iso8601(s.time))) from \(repository.displayName)")
        let tar = folder + "/" + name + ".tar"
        let gz = folder + "/" + name + ArchiveName.suffix
        try await checkSpace(for: s, in: folder)
        let fd = try FileDescriptor.open(tar, .writeOnly, options: [.create, .exclusiveCreate], permissions: [.ownerReadWrite])
        do {
            defer { try? fd.close() }
            try await repository.dump(snapshot: s.id, name: name, to: fd)
        }
        defer { unlink(tar) }
        var st = stat()
        stat(tar, &st)
        let out = try FileDescriptor.open(gz, .writeOnly, options: [.create, .exclusiveCreate], permissions: [.ownerReadWrite])
        defer { try? out.close() }
        guard let gzip = Command.find("gzip", extraDirs: ["/bin", "/usr/bin"]) else {
            throw BackupError.unavailable("gzip is not installed", hint: "apt install gzip")
        }
        let r = try await Command.run(gzip, ["-1", "-c", "--", tar], stdoutTo: out)
        guard r.succeeded else { throw BackupError.failed("gzip of the fetched copy failed: \(r.lastErrorLine)") }
        return FetchedCopy(snapshotId: s.id, archive: name, path: gz, tarBytes: Int64(st.st_size), host: s.hostname,
                           durationMs: clock.elapsedMs.ms2)
    }

    /// Before `restic dump`: room in `folder` for the copy's tar and its gzip (at most as large).
    func checkSpace(for s: RemoteSnapshot, in folder: String) async throws {
        let size = try await repository.restoreSize(snapshot: s.id)
        guard let free = FileSystem.freeBytes(folder) else { return }
        let needed = RemoteOperations.fetchBytesNeeded(tar: size)
        guard free >= needed else {
            throw BackupError(.cantCreate, "\(folder) has \(Human.bytes(free)) free, but fetching the copy \(s.shortID) needs \(Human.bytes(needed)) (its tar of \(Human.bytes(size)) and the gzip made of it)",
                              hint: "free space in the destination, or set destination in the config to a larger file system")
        }
    }

    /// The tar, and its gzip made beside it (gzip -1 adds at most 0.1% and a few bytes to data that does not compress).
    public static func fetchBytesNeeded(tar: Int64) -> Int64 { tar * 2 + tar / 1000 + (1 << 20) }
}
