import Foundation
import MSBKit

/// What went wrong in a restic run, read from its exit status and stderr (restic 0.14 exits 1 for
/// every fatal error, so the text decides; newer versions' codes 10 and 11 are honoured too).
public enum ResticFailure: String, Sendable, Equatable {
    case unreachable, wrongPassword, notInitialized, alreadyInitialized, locked, diskFull, interrupted, killed, other

    public static func classify(status: Int32, stderr: String) -> ResticFailure {
        let t = stderr.lowercased()
        let has = { (needles: [String]) in needles.contains { t.contains($0) } }
        if has(["no space left on device", "disk quota exceeded", "quotaexceeded", "insufficient storage"]) { return .diskFull }
        if status == 11 || has(["repository is already locked", "unable to create lock in backend"]) { return .locked }
        if has(["wrong password or no key found"]) { return .wrongPassword }
        if has(["connection refused", "no such host", "network is unreachable", "no route to host", "i/o timeout",
                "connection timed out", "connection reset by peer", "tls handshake", "unable to start the sftp session",
                "ssh: connect to host", "could not resolve hostname", "permission denied (publickey", "host key verification failed",
                "server misbehaving", "context deadline exceeded", "subprocess ssh:"]) { return .unreachable }
        if has(["config file already exists"]) { return .alreadyInitialized }
        if status == 10 || (t.contains("unable to open config file") && has(["no such file or directory", "does not exist", "is there a repository at the following location"])) {
            return .notInitialized
        }
        if status == 130 || t.contains("signal interrupt received") { return .interrupted }
        if status > 128 { return .killed }
        return .other
    }
}

/// Turns a failed restic run into one BackupError line; masks every secret the driver knows of.
public struct ResticErrorReporter: Sendable {
    public var repository: String
    /// Texts that must never appear in a message (the password, the env file's values).
    var secrets: [String]

    public init(repository: String, secrets: [String]) {
        self.repository = ResticErrorReporter.maskURLPassword(repository)
        self.secrets = secrets.filter { $0.count >= 3 }.sorted { $0.count > $1.count }
    }

    /// `what` is the operation ("restic backup"), `status` and `stderr` restic's.
    public func error(_ what: String, status: Int32, stderr: String) -> BackupError {
        let kind = ResticFailure.classify(status: status, stderr: stderr)
        let detail = redact(ResticErrorReporter.detailLine(stderr, status: status))
        let head = "\(what) on \(repository) failed"
        switch kind {
        case .unreachable:
            return BackupError(.unavailable, "\(head): the repository is unreachable: \(detail)",
                               hint: "check the network, the host name and port, and the ssh key or credentials (remote.options, remote.env_file)")
        case .wrongPassword:
            return BackupError(.config, "\(head): wrong password (no key in the repository opens with remote.password_file)",
                               hint: "put the repository's password in remote.password_file")
        case .notInitialized:
            return BackupError(.unavailable, "\(head): the repository is not initialised",
                               hint: "run `maas-snapshot-backup remote-init` once to create it")
        case .alreadyInitialized:
            return BackupError(.failed, "\(head): a repository already exists there", hint: "nothing to do: it is initialised")
        case .locked:
            return BackupError(.locked, "\(head): the repository is locked by another restic: \(detail)",
                               hint: "wait for the other run; if none is running, run `restic unlock` on the repository")
        case .diskFull:
            return BackupError(.cantCreate, "\(head): the repository's storage is full: \(detail)",
                               hint: "free space there, or lower remote.retention and run the remote prune")
        case .interrupted:
            return BackupError(.failed, "\(head): restic was interrupted; nothing was saved", hint: "run it again")
        case .killed:
            return BackupError(.failed, "\(head): restic was killed (signal \(status - 128)); nothing was saved",
                               hint: "run it again; a stale lock it left is removed by the next run")
        case .other:
            return BackupError(.failed, "\(head): \(detail)", hint: "see restic's message; `restic -r REPO check` may tell more")
        }
    }

    public func redact(_ text: String) -> String {
        var out = ResticErrorReporter.maskURLPassword(text)
        for s in secrets { out = out.replacingOccurrences(of: s, with: "***") }
        return out
    }

    /// restic's `Fatal:` line without the prefix, else its last non-empty line; at most 300 characters.
    static func detailLine(_ stderr: String, status: Int32) -> String {
        let lines = stderr.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        var line = lines.first { $0.hasPrefix("Fatal:") } ?? lines.first { $0.lowercased().contains("error") } ?? lines.last ?? "exit status \(status)"
        if line.hasPrefix("Fatal: ") { line.removeFirst(7) }
        line = String(line.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? " " : Character($0) })
        return line.count > 300 ? String(line.prefix(300)) + "..." : line
    }

    /// `scheme://user:secret@host` → `scheme://user:***@host`, anywhere in `s`.
    public static func maskURLPassword(_ s: String) -> String {
        var out = ""
        var rest = Substring(s)
        while let r = rest.range(of: "://") {
            out += rest[..<r.upperBound]
            rest = rest[r.upperBound...]
            let authorityEnd = rest.firstIndex { "/ \"'".contains($0) } ?? rest.endIndex
            let authority = rest[..<authorityEnd]
            if let at = authority.lastIndex(of: "@"), let colon = authority[..<at].firstIndex(of: ":") {
                out += authority[...colon] + "***" + authority[at...]
                rest = rest[authorityEnd...]
            }
        }
        return out + rest
    }
}
