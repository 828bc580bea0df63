import Foundation
import MSBKit
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A restic repository, driven by running the `restic` binary. The repository string goes to
/// restic as RESTIC_REPOSITORY, the password as RESTIC_PASSWORD_FILE (the descriptor opened and
/// checked once, as /proc/<pid>/fd/N) and the back-end credentials
/// as their own variables: none of them is ever in argv or in a message. A run that fails because
/// of a lock runs `restic unlock` (stale locks only) once and tries again.
public struct ResticRepository: RemoteRepository {
    public let settings: ResticSettings
    public let executable: String
    let reporter: ResticErrorReporter
    /// The password file, opened and checked once; restic reads it through this descriptor
    /// (RESTIC_PASSWORD_FILE=/proc/<our pid>/fd/N), never by its name.
    let password: CheckedFile

    public var displayName: String { reporter.repository }

    /// Checks the password file (owner root or the caller, mode 0600 or stricter) and finds restic.
    public init(_ settings: ResticSettings) throws {
        password = try CheckedFile(path: settings.passwordFile, key: "remote.password_file", maxBytes: ResticSecrets.maxFileBytes)
        guard let exe = Command.find(settings.executable ?? "restic", extraDirs: ["/usr/bin", "/usr/local/bin"]) else {
            throw BackupError.unavailable("restic is not installed (\(settings.executable ?? "restic") was not found)", hint: "apt install restic")
        }
        for k in settings.environment.keys where !ResticSecrets.isVariableName(k) || ResticSecrets.reservedVariables.contains(k) {
            throw BackupError.config("remote.env_file: \(ResticSecrets.printable(k)) may not be set", hint: "only back-end credentials belong in the env file")
        }
        for o in settings.options where !ResticRepository.isOption(o) {
            throw BackupError.config("remote.options: '\(ResticSecrets.printable(o))' is not KEY=VALUE", hint: "write restic -o options such as sftp.command=ssh ...")
        }
        self.settings = settings
        self.executable = exe
        var secrets = Array(settings.environment.values)
        if let pw = try? password.bytes(), let text = String(validating: pw, as: UTF8.self) {
            secrets.append(text.trimmingCharacters(in: .newlines))
        }
        reporter = ResticErrorReporter(repository: settings.repository, secrets: secrets)
    }

    /// `key=value` with a key of lower-case letters, digits, '.', '-' and '_'.
    public static func isOption(_ o: String) -> Bool { RemoteConfig.isResticOption(o) }

    // MARK: operations

    @discardableResult
    public func initialize() async throws -> Bool {
        let r = try await raw(["init"])
        if r.status == 0 { return true }
        if ResticFailure.classify(status: r.status, stderr: r.stderr) == .alreadyInitialized { return false }
        throw reporter.error("restic init", status: r.status, stderr: r.stderr)
    }

    public func snapshots(tags: [String] = []) async throws -> [RemoteSnapshot] {
        let r = try await checked("restic snapshots", ["snapshots", "--json"] + (try tagFilter(tags)))
        return try ResticRepository.parseSnapshots(r.stdout)
    }

    public func backup(fromTarStream fd: FileDescriptor, name: String, tags: [String], host: String,
                       feed: @escaping @Sendable () async throws -> Void) async throws -> String {
        let args: [String]
        do {
            args = ["backup", "--stdin", "--stdin-filename", try ResticRepository.fileName(name), "--host", try ResticRepository.checkHost(host),
                    "--json", "--quiet"] + (try ResticRepository.checkTags(tags)).flatMap { ["--tag", $0] }
        } catch {
            try? fd.close()
            throw error
        }
        try prepareCache()
        let r = try await ResticProcess.run(executable: executable, arguments: common + args, environment: environment, stdin: fd, feed: feed)
        let failure = ResticFailure.classify(status: r.status, stderr: r.stderr)
        if let feedError = r.feedError {
            // restic saved nothing if we interrupted it; if it somehow finished, its snapshot is of a
            // partial stream: forget it.
            if r.status == 0, let id = ResticRepository.parseSnapshotID(r.stdout) {
                try? await forget(snapshotIDs: [id])
            }
            // restic's own failure (it stopped reading: the feed then saw a broken pipe) comes first.
            if r.status != 0 && failure != .interrupted { throw reporter.error("restic backup", status: r.status, stderr: r.stderr) }
            throw feedError
        }
        guard r.status == 0 else { throw reporter.error("restic backup", status: r.status, stderr: r.stderr) }
        guard let id = ResticRepository.parseSnapshotID(r.stdout) else {
            throw BackupError.failed("restic backup on \(displayName) printed no snapshot id", hint: "check that restic is version 0.14 or newer")
        }
        return id
    }

    public func dump(snapshot: String, name: String, to fd: FileDescriptor) async throws {
        guard ResticRepository.isSnapshotID(snapshot) else {
            throw BackupError.failed("'\(ResticSecrets.printable(snapshot))' is not a restic snapshot id", hint: "use an id from the remote snapshot list")
        }
        _ = try await checked("restic dump", ["dump", snapshot, "/" + (try ResticRepository.fileName(name))], stdoutTo: fd)
    }

    public func forget(keepLast: Int, tags: [String], host: String?) async throws {
        guard keepLast >= 1 else { throw BackupError.failed("forget needs keepLast of 1 or more, not \(keepLast)") }
        var args = ["forget", "--keep-last", String(keepLast), "--group-by", "host"] + (try tagFilter(tags))
        if let host { args += ["--host", try ResticRepository.checkHost(host)] }
        _ = try await checked("restic forget", args)
    }

    public func forget(snapshotIDs: [String]) async throws {
        guard !snapshotIDs.isEmpty else { return }
        for id in snapshotIDs where !ResticRepository.isSnapshotID(id) {
            throw BackupError.failed("'\(ResticSecrets.printable(id))' is not a restic snapshot id")
        }
        _ = try await checked("restic forget", ["forget"] + snapshotIDs)
    }

    public func prune() async throws {
        _ = try await checked("restic prune", ["prune"])
    }

    public func check(readDataSubset: String) async throws {
        let ok = readDataSubset.hasSuffix("%") ? Double(readDataSubset.dropLast()).map { $0 > 0 && $0 <= 100 } ?? false
            : readDataSubset.split(separator: "/").count == 2 && readDataSubset.split(separator: "/").allSatisfy { Int($0) != nil }
        guard ok else { throw BackupError.failed("'\(readDataSubset)' is not a read-data subset", hint: "write e.g. 5% or 1/10") }
        _ = try await checked("restic check", ["check", "--read-data-subset=\(readDataSubset)"])
    }

    public func unlock() async throws {
        _ = try await checked("restic unlock", ["unlock"], retryOnLock: false)
    }

    public func stats() async throws -> RemoteStats {
        let r = try await checked("restic stats", ["stats", "--mode", "raw-data", "--json"])
        guard let obj = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any],
              let total = (obj["total_size"] as? NSNumber)?.int64Value else {
            throw BackupError.failed("restic stats on \(displayName) printed no total_size", hint: "check that restic is version 0.14 or newer")
        }
        return RemoteStats(totalSize: total, snapshotsCount: (obj["snapshots_count"] as? NSNumber)?.intValue ?? 0)
    }

    public func restoreSize(snapshot: String) async throws -> Int64 {
        guard ResticRepository.isSnapshotID(snapshot) else {
            throw BackupError.failed("'\(ResticSecrets.printable(snapshot))' is not a restic snapshot id", hint: "use an id from the remote snapshot list")
        }
        let r = try await checked("restic stats", ["stats", snapshot, "--mode", "restore-size", "--json"])
        guard let obj = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any],
              let total = (obj["total_size"] as? NSNumber)?.int64Value else {
            throw BackupError.failed("restic stats of \(snapshot) printed no total_size", hint: "check that restic is version 0.14 or newer")
        }
        return total
    }

    // MARK: running restic

    /// Arguments before every command: the cache and the extended options. Never a secret.
    var common: [String] {
        ["--cache-dir", settings.cacheDir] + settings.options.flatMap { ["-o", $0] }
    }

    /// restic's environment: the repository and the password file, the env file's variables; no
    /// password inherited from the caller.
    var environment: [String: String?] {
        var env: [String: String?] = ["RESTIC_PASSWORD": nil, "RESTIC_PASSWORD_COMMAND": nil, "RESTIC_REPOSITORY_FILE": nil,
                                      "RESTIC_CACHE_DIR": nil, "RESTIC_KEY_HINT": nil]
        for (k, v) in settings.environment { env[k] = v }
        env["RESTIC_REPOSITORY"] = settings.repository
        env["RESTIC_PASSWORD_FILE"] = password.procPath
        return env
    }

    func prepareCache() throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: settings.cacheDir, isDirectory: &isDir), isDir.boolValue { return }
        do {
            try FileManager.default.createDirectory(atPath: settings.cacheDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw BackupError(.cantCreate, "cannot create restic's cache folder \(settings.cacheDir): \(error.localizedDescription)",
                              hint: "check that the state directory is writable")
        }
    }

    func raw(_ args: [String], stdoutTo fd: FileDescriptor? = nil) async throws -> ResticRun {
        try prepareCache()
        return try await ResticProcess.run(executable: executable, arguments: common + args, environment: environment, stdoutTo: fd)
    }

    /// Runs `args`; a lock error runs `restic unlock` once and retries. Throws the classified error.
    func checked(_ what: String, _ args: [String], stdoutTo fd: FileDescriptor? = nil, retryOnLock: Bool = true) async throws -> ResticRun {
        var r = try await raw(args, stdoutTo: fd)
        if r.status != 0 && retryOnLock && ResticFailure.classify(status: r.status, stderr: r.stderr) == .locked {
            let u = try await raw(["unlock"])
            if u.status == 0 { r = try await raw(args, stdoutTo: fd) }
        }
        guard r.status == 0 else { throw reporter.error(what, status: r.status, stderr: r.stderr) }
        return r
    }

    func tagFilter(_ tags: [String]) throws -> [String] {
        tags.isEmpty ? [] : ["--tag", try ResticRepository.checkTags(tags).joined(separator: ",")]
    }

    // MARK: values

    static func checkTags(_ tags: [String]) throws -> [String] {
        for t in tags where t.isEmpty || t.contains(",") || t.contains(where: { $0.isNewline || $0 == " " }) {
            throw BackupError.failed("'\(ResticSecrets.printable(t))' is not a usable restic tag", hint: "tags are non-empty, without commas or spaces")
        }
        return tags
    }

    static func checkHost(_ h: String) throws -> String {
        guard !h.isEmpty, !h.hasPrefix("-"), !h.contains(where: { $0.isWhitespace || $0 == "," }) else {
            throw BackupError.failed("'\(ResticSecrets.printable(h))' is not a usable host name for restic")
        }
        return h
    }

    /// NAME → NAME.tar; NAME is one path component.
    static func fileName(_ name: String) throws -> String {
        guard !name.isEmpty, !name.contains("/"), name != ".", name != "..", !name.hasPrefix("-"),
              !name.contains(where: { $0.isNewline }) else {
            throw BackupError.failed("'\(ResticSecrets.printable(name))' is not a usable archive name for restic", hint: "use the archive's file name without .tar.gz")
        }
        return name + ".tar"
    }

    static func isSnapshotID(_ s: String) -> Bool {
        (8...64).contains(s.count) && s.allSatisfy { $0.isHexDigit }
    }

    /// `snapshot_id` of the `--json` summary line.
    static func parseSnapshotID(_ stdout: String) -> String? {
        for line in stdout.split(separator: "\n").reversed() {
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  obj["message_type"] as? String == "summary", let id = obj["snapshot_id"] as? String, isSnapshotID(id) else { continue }
            return id
        }
        return nil
    }

    public static func parseSnapshots(_ json: String) throws -> [RemoteSnapshot] {
        let trimmed = json.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.isEmpty || trimmed == "null" { return [] }
        guard let arr = try? JSONSerialization.jsonObject(with: Data(trimmed.utf8)) as? [[String: Any]] else {
            throw BackupError.failed("restic snapshots printed something that is not a JSON list", hint: "check that restic is version 0.14 or newer")
        }
        let snaps = try arr.map { o -> RemoteSnapshot in
            guard let id = o["id"] as? String, let t = o["time"] as? String, let time = parseTime(t) else {
                throw BackupError.failed("restic snapshots printed a snapshot without id or time")
            }
            return RemoteSnapshot(id: id, shortID: o["short_id"] as? String ?? String(id.prefix(8)), time: time,
                                  hostname: o["hostname"] as? String ?? "", tags: o["tags"] as? [String] ?? [], paths: o["paths"] as? [String] ?? [])
        }
        return snaps.sorted { $0.time < $1.time }
    }

    /// RFC 3339 with up to nanoseconds and any offset (restic writes local time).
    static func parseTime(_ s: String) -> Date? {
        var t = s
        if let dot = t.firstIndex(of: ".") {
            let fracEnd = t[t.index(after: dot)...].firstIndex { !$0.isNumber } ?? t.endIndex
            let digits = t[t.index(after: dot)..<fracEnd]
            t = String(t[..<dot]) + "." + String((digits + "000").prefix(3)) + String(t[fracEnd...])
        }
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = f.date(from: t) { return d }
        f.formatOptions = [.withInternetDateTime]
        return f.date(from: t)
    }
}
