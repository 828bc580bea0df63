import Foundation
import MSBKit
#if canImport(Glibc)
import Glibc
#endif

/// What the last copy did, kept in STATE_DIR/remote-copy.json (written with AtomicFile, mode 0600)
/// for `status`, and the archives whose copy failed, which the next copy retries.
public struct CopyState: Sendable, Codable, Equatable {
    public struct Attempt: Sendable, Codable, Equatable {
        /// ok, failed or scheduled.
        public var status: String
        /// ISO 8601 UTC time the attempt ended (or was scheduled).
        public var at: String
        /// Archive names (without .tar.gz) copied, or the one that failed, or the one scheduled.
        public var archives: [String]
        public var error: String?
        /// A scheduled copy: the systemd unit or the detached process.
        public var scheduledAs: String?
        public init(status: String, at: String, archives: [String], error: String? = nil, scheduledAs: String? = nil) {
            self.status = status
            self.at = at
            self.archives = archives
            self.error = error
            self.scheduledAs = scheduledAs
        }
    }
    public var last: Attempt?
    public var lastSuccessAt: String?
    /// Archives whose copy failed or was cut short: copied by the next run if still local.
    public var pending: [String] = []
    /// The snapshot (short id) each local archive was copied to, recorded once restic finished
    /// and the whole archive went through. A snapshot tagged with an archive but not recorded here
    /// may be a cut-off stream (this process was SIGKILLed, restic then saw the end of its input
    /// and saved what it had): the archive counts as not copied yet.
    public var copied: [String: String] = [:]

    public init() {}

    enum CodingKeys: String, CodingKey { case last, lastSuccessAt, pending, copied }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        last = try c.decodeIfPresent(Attempt.self, forKey: .last)
        lastSuccessAt = try c.decodeIfPresent(String.self, forKey: .lastSuccessAt)
        pending = try c.decodeIfPresent([String].self, forKey: .pending) ?? []
        copied = try c.decodeIfPresent([String: String].self, forKey: .copied) ?? [:]
    }

    public static func path(stateDir: String) -> String { Config.join(stateDir, "remote-copy.json") }

    /// The saved state; an empty one when there is none or it cannot be read.
    public static func load(stateDir: String) -> CopyState {
        guard let data = FileManager.default.contents(atPath: path(stateDir: stateDir)),
              let s = try? JSONDecoder().decode(CopyState.self, from: data) else { return CopyState() }
        return s
    }

    /// Writes the state atomically (the state folder is made 0700 when missing).
    public func save(stateDir: String) throws {
        try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        try AtomicFile.write(Array(try e.encode(self)), to: CopyState.path(stateDir: stateDir), mode: 0o600)
    }
}

/// The copy's gauges in the metrics textfile (MetricsFile): the copy updates its own values in
/// the record the backup's gauges are kept in too, so a copy that runs detached after a
/// pre-upgrade backup lands there as well.
public enum CopyMetrics {
    public static let help: [(String, String)] = [
        ("last_copy_timestamp_seconds", "Time the last off-host copy (restic) ended."),
        ("last_copy_success", "1 when the last off-host copy succeeded, 0 when it failed."),
        ("last_copy_success_timestamp_seconds", "Time of the last successful off-host copy (0: none yet)."),
        ("last_copy_duration_seconds", "Duration of the last off-host copy."),
        ("last_copy_bytes", "Bytes (uncompressed tar) the last successful off-host copy sent to restic."),
    ]

    /// Records the copy's gauges and rewrites the textfile; returns a warning when it cannot.
    @discardableResult
    public static func update(stateDir: String, path: String?, success: Bool, durationMs: Double, bytes: Int64?,
                              now: Date = Date()) -> String? {
        MetricsFile.update(stateDir: stateDir, path: path) { values in
            let t = Double(Int(now.timeIntervalSince1970))
            values["last_copy_timestamp_seconds"] = t
            values["last_copy_success"] = success ? 1 : 0
            values["last_copy_duration_seconds"] = durationMs / 1000
            if success {
                values["last_copy_success_timestamp_seconds"] = t
                if let bytes { values["last_copy_bytes"] = Double(bytes) }
            }
        }
    }
}
