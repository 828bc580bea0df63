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

    /// Refuses `path` unless it is a regular file (not a symlink) owned by root or the caller with
    /// no permission bits for group or others. `key` is the config key, for the message.
    public static func checkPrivateFile(_ path: String, key: String) throws {
        var st = stat()
        guard lstat(path, &st) == 0 else {
            let e = errno
            if e == ENOENT {
                throw BackupError.config("\(key) \(path) does not exist", hint: "create it (owner root, mode 0600)")
            }
            throw BackupError.config("\(key) \(path) cannot be read: \(String(cString: strerror(e)))", hint: "check the path and its folders")
        }
        if (st.st_mode & S_IFMT) == S_IFLNK {
            throw BackupError.config("\(key) \(path) is a symbolic link", hint: "point the key at the file itself (owner root, mode 0600)")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw BackupError.config("\(key) \(path) is not a regular file", hint: "point it at a file (owner root, mode 0600)")
        }
        if st.st_uid != 0 && st.st_uid != geteuid() {
            throw BackupError.config("\(key) \(path) belongs to uid \(st.st_uid), not root", hint: "chown root: \(path)")
        }
        let mode = st.st_mode & 0o7777
        if mode & 0o077 != 0 {
            throw BackupError.config("\(key) \(path) has mode \(String(mode, radix: 8)): group or others can use it",
                                     hint: "chmod 600 \(path)")
        }
    }

    /// Reads KEY=VALUE lines (blank lines and lines starting with # are skipped; a value in matching
    /// single or double quotes loses them). Keys must match [A-Z_][A-Z0-9_]* and must not be one of
    /// `reservedVariables` or a loader variable (LD_*).
    public static func readEnvFile(_ path: String, key: String) throws -> [String: String] {
        try checkPrivateFile(path, key: key)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw BackupError.config("\(key) \(path) cannot be read", hint: "check its permissions")
        }
        guard let text = String(data: data, encoding: .utf8) else {
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
            if reservedVariables.contains(name) || name.hasPrefix("LD_") {
                throw BackupError.config("\(at): \(name) may not be set here",
                                         hint: name.hasPrefix("RESTIC_PASSWORD") ? "put the password in remote.password_file"
                                             : "set the repository with remote.repository; only back-end credentials belong in the env file")
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
