import Foundation
import MSBKit
import MSBCopy
#if canImport(Glibc)
import Glibc
#endif

/// `restore --from-remote`: what was fetched, and the restore.
public struct RemoteRestoreResult: Sendable, Encodable {
    public var fetched: FetchedCopy
    public var restore: RestoreResult

    /// The restore's fields, plus `from_remote`.
    public func encode(to encoder: any Encoder) throws {
        try restore.encode(to: encoder)
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(fetched, forKey: .fromRemote)
    }
    enum Key: String, CodingKey { case fromRemote }
}

/// `restore --from-remote SNAPSHOT|latest`: works with only the tool, its config and the
/// repository's password (a fresh machine: no MAAS database, no /etc/maas, no /var/lib/maas yet).
/// The copy is fetched into a private 0700 folder under the destination (after checking it has room
/// for it), verified against its manifest and its signature (this host's key or `trusted_keys`:
/// the private folder proves nothing about who made the copy) and restored as `restore` does; the
/// fetched file is removed afterwards, whatever happens. `latest` is this host's newest copy, and
/// its manifest must name this host.
public enum RemoteRestore {
    public static func run(config: Config, options: RestoreOptions, snapshot: String) async throws -> RemoteRestoreResult {
        try Privilege.requireRoot("restore")
        return try await RestoreOutcomes.recording(config: config, command: options.command, log: options.log,
                                                 downtimeMs: { $0.restore.downtimeMs }) {
            try await fetchAndRestore(config: config, options: options, snapshot: snapshot)
        }
    }

    static func fetchAndRestore(config: Config, options: RestoreOptions, snapshot: String) async throws -> RemoteRestoreResult {
        let ops = try RemoteOperations(config: config)
        // The destination may not exist yet on a fresh machine.
        if !FileManager.default.fileExists(atPath: config.destination) {
            do {
                try FileManager.default.createDirectory(atPath: config.destination, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw BackupError(.cantCreate, "cannot create the destination \(config.destination): \(error.localizedDescription)",
                                  hint: "set destination in the config to a writable place")
            }
        }
        let dir = try PrivateDir.make(in: config.destination, name: ".from-remote-\(ArchiveName.timestamp(Date()))-\(getpid())")
        defer { dir.remove() }
        let fetched = try await ops.fetch(snapshot, into: dir.path, log: options.log)
        options.log?(.info, String(format: "fetched %@ (%lld bytes of tar) in %.1f s", fetched.archive, fetched.tarBytes, fetched.durationMs / 1000))
        var options = options
        // The manifest records the host name up to its first dot.
        if snapshot == "latest" { options.expectedHost = CopyPipeline.hostName().split(separator: ".").first.map(String.init) ?? "localhost" }
        // Another host's copy is taken only when signed by a key trusted here: --allow-unsigned does not apply.
        if fetched.host != CopyPipeline.hostName() && options.allowUnsigned {
            options.allowUnsigned = false
            options.log?(.info, "--allow-unsigned does not apply to the copy of another host (\(fetched.host)): it must be signed by a key in trusted_keys")
        }
        let restored = try await RestorePipeline(config: config, options: options).runUnrecorded(archive: fetched.path)
        return RemoteRestoreResult(fetched: fetched, restore: restored)
    }
}
