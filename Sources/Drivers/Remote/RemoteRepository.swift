import Foundation
import MSBKit
import SystemPackage

/// One snapshot in a remote repository (`restic snapshots --json`).
public struct RemoteSnapshot: Sendable, Equatable, Codable {
    public var id: String
    public var shortID: String
    public var time: Date
    public var hostname: String
    public var tags: [String]
    public var paths: [String]

    public init(id: String, shortID: String, time: Date, hostname: String, tags: [String], paths: [String]) {
        self.id = id
        self.shortID = shortID
        self.time = time
        self.hostname = hostname
        self.tags = tags
        self.paths = paths
    }

    /// The value of a `key=value` tag (e.g. `archive`), or nil.
    public func tagValue(_ key: String) -> String? {
        tags.first { $0.hasPrefix(key + "=") }.map { String($0.dropFirst(key.count + 1)) }
    }
}

/// What a repository holds (`restic stats --mode raw-data --json`).
public struct RemoteStats: Sendable, Equatable {
    /// Bytes of stored (deduplicated, compressed, encrypted) data.
    public var totalSize: Int64
    public var snapshotsCount: Int
    public init(totalSize: Int64, snapshotsCount: Int) {
        self.totalSize = totalSize
        self.snapshotsCount = snapshotsCount
    }
}

/// An off-host repository the archives are copied to. Every operation throws BackupError with
/// one line saying what failed and how to fix it.
public protocol RemoteRepository: Sendable {
    /// The repository as shown in messages (credentials in a URL are masked).
    var displayName: String { get }
    /// Creates the repository. Returns false when it already existed (that is success too).
    @discardableResult func initialize() async throws -> Bool
    /// Snapshots carrying every tag in `tags` (all snapshots when empty), oldest first.
    func snapshots(tags: [String]) async throws -> [RemoteSnapshot]
    /// Stores the tar stream read from `fd` as `/NAME.tar`; returns the new snapshot's id (restic
    /// 0.14 prints the 8-digit short id; every command accepts it). Takes
    /// ownership of `fd` (closed once restic has started). While restic runs, `feed` runs; if it
    /// throws, restic is interrupted before it sees the end of the stream, so no snapshot is
    /// saved, and its error is thrown.
    func backup(fromTarStream fd: FileDescriptor, name: String, tags: [String], host: String,
                feed: @escaping @Sendable () async throws -> Void) async throws -> String
    /// Writes `/NAME.tar` of `snapshot` to `fd` (left open).
    func dump(snapshot: String, name: String, to fd: FileDescriptor) async throws
    /// Forgets all but the newest `keepLast` snapshots carrying every tag in `tags` (and of `host`).
    func forget(keepLast: Int, tags: [String], host: String?) async throws
    /// Forgets these snapshots.
    func forget(snapshotIDs: [String]) async throws
    /// Removes the data no snapshot uses any more.
    func prune() async throws
    /// Checks the repository's structure and reads `readDataSubset` (e.g. "5%") of its data.
    func check(readDataSubset: String) async throws
    /// Removes stale locks (those of processes that are gone).
    func unlock() async throws
    func stats() async throws -> RemoteStats
    /// The bytes `dump` of `snapshot` writes (restic stats --mode restore-size).
    func restoreSize(snapshot: String) async throws -> Int64
}

extension RemoteRepository {
    public func backup(fromTarStream fd: FileDescriptor, name: String, tags: [String], host: String) async throws -> String {
        try await backup(fromTarStream: fd, name: name, tags: tags, host: host, feed: {})
    }
    public func check() async throws { try await check(readDataSubset: "5%") }
}

/// How to reach a restic repository: everything the driver needs, secrets as file paths or
/// values read from the env file (they go to restic through its environment only).
public struct ResticSettings: Sendable, Equatable {
    /// Any restic repository string: a path, `sftp:host:/path`, `rest:http://...`, `s3:...`.
    public var repository: String
    /// Given to restic as RESTIC_PASSWORD_FILE.
    public var passwordFile: String
    /// Back-end credentials (from the env file), added to restic's environment.
    public var environment: [String: String]
    /// Extended options, each given as `-o KEY=VALUE` (e.g. `sftp.command=ssh ...`).
    public var options: [String]
    /// restic's cache (`--cache-dir`), e.g. under the state directory.
    public var cacheDir: String
    /// The restic binary; nil: `restic` on PATH.
    public var executable: String?

    public init(repository: String, passwordFile: String, environment: [String: String] = [:], options: [String] = [],
                cacheDir: String, executable: String? = nil) {
        self.repository = repository
        self.passwordFile = passwordFile
        self.environment = environment
        self.options = options
        self.cacheDir = cacheDir
        self.executable = executable
    }
}
