import Foundation
import MSBKit
#if canImport(Glibc)
import Glibc
#endif

/// The secrets a restic repository needs, checked before restic sees them: the password file and
/// the optional env file (back-end credentials such as AWS_ACCESS_KEY_ID). Both must be regular
/// files owned by root (or the caller) that nobody else can read or write. Errors name the key
/// and the file, never a value.
public enum ResticSecrets {
    /// Variables the driver sets itself (or that would put a secret elsewhere than a file).
    public static let reservedVariables: Set<String> = [
        "RESTIC_PASSWORD", "RESTIC_PASSWORD_FILE", "RESTIC_PASSWORD_COMMAND",
        "RESTIC_REPOSITORY", "RESTIC_REPOSITORY_FILE", "RESTIC_CACHE_DIR",
    ]

    /// The largest password or env file read.
    public static let maxFileBytes = 64 << 10

    /// The env file may set only the credentials of restic's back ends: S3 (AWS_*), B2 (B2_*),
    /// Azure (AZURE_*), Google Cloud Storage (GOOGLE_*), OpenStack Swift (OS_*, ST_*), and the
    /// REST server's user and password. Nothing else (PATH, SSH_*, proxies, RCLONE_*, LD_*) may
    /// change how restic or the programs it runs behave.
    public static let allowedPrefixes = ["AWS_", "B2_", "AZURE_", "GOOGLE_", "OS_", "ST_"]
    public static let allowedNames: Set<String> = ["RESTIC_REST_USERNAME", "RESTIC_REST_PASSWORD"]

    public static func isCredentialVariable(_ name: String) -> Bool {
        allowedNames.contains(name) || allowedPrefixes.contains { name.hasPrefix($0) && name.count > $0.count }
    }

    /// Refuses `path` unless it is a regular file (not a symlink) owned by root or the caller with
    /// no permission bits for group or others; opened once (CheckedFile). `key` names the config key.
    public static func checkPrivateFile(_ path: String, key: String) throws {
        _ = try CheckedFile(path: path, key: key, maxBytes: maxFileBytes)
    }

    /// Reads KEY=VALUE lines through one checked descriptor (blank lines and lines starting with #
    /// are skipped; a value in matching single or double quotes loses them). Keys must match
    /// [A-Z_][A-Z0-9_]* and be back-end credentials (`isCredentialVariable`).
    public static func readEnvFile(_ path: String, key: String) throws -> [String: String] {
        let file = try CheckedFile(path: path, key: key, maxBytes: maxFileBytes)
        guard let text = String(validating: try file.bytes(), as: UTF8.self) else {
            throw BackupError.config("\(key) \(path) is not UTF-8 text", hint: "write KEY=VALUE lines")
        }
        var env: [String: String] = [:]
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.hasSuffix("\r") ? String(raw.dropLast()) : String(raw)
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let at = "\(key) \(path) line \(i + 1)"
            guard let eq = line.firstIndex(of: "=") else {
                throw BackupError.config("\(at) is not KEY=VALUE", hint: "write one KEY=VALUE per line")
            }
            let name = String(line[..<eq])
            var value = String(line[line.index(after: eq)...])
            guard isVariableName(name) else {
                throw BackupError.config("\(at): '\(printable(name))' is not an allowed variable name",
                                         hint: "names are upper case letters, digits and _, not starting with a digit")
            }
            if reservedVariables.contains(name) || !isCredentialVariable(name) {
                throw BackupError.config("\(at): \(name) may not be set here",
                                         hint: name.hasPrefix("RESTIC_PASSWORD") ? "put the password in remote.password_file"
                                             : "only back-end credentials belong in the env file (AWS_*, B2_*, AZURE_*, GOOGLE_*, OS_*, ST_*, RESTIC_REST_USERNAME, RESTIC_REST_PASSWORD); set the repository with remote.repository")
            }
            if env[name] != nil {
                throw BackupError.config("\(at): \(name) is given twice", hint: "keep one")
            }
            if value.count >= 2, let f = value.first, f == "\"" || f == "'", value.last == f {
                value = String(value.dropFirst().dropLast())
            }
            env[name] = value
        }
        return env
    }

    public static func isVariableName(_ s: String) -> Bool {
        guard let first = s.utf8.first, first == UInt8(ascii: "_") || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(first) else { return false }
        return s.utf8.allSatisfy { $0 == UInt8(ascii: "_") || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
    }

    /// A name for messages: at most 40 characters, controls escaped.
    static func printable(_ s: String) -> String {
        let cut = s.count > 40 ? String(s.prefix(40)) + "..." : s
        return String(cut.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? "?" : Character($0) })
    }
}
