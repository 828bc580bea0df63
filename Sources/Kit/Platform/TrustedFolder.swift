import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A folder whose contents the tool acts on as root (`state_dir`: the journals `recover` follows,
/// the copy state): it and every folder above it must be real folders (no symlink), root's (or the
/// running user's), and not writable by group or others. A root-owned sticky folder above (`/tmp`)
/// is allowed, as for archives. Folders not made yet are fine (the tool makes them 0700).
public enum TrustedFolder {
    /// Throws one line (exit 78) naming the first folder on the way that fails.
    public static func check(_ path: String, key: String) throws {
        let parts = path.split(separator: "/").map(String.init)
        var current = ""
        for (i, part) in ([""] + parts).enumerated() {
            current = i == 0 ? "/" : (current == "/" ? "" : current) + "/" + part
            var st = stat()
            guard lstat(current, &st) == 0 else {
                if errno == ENOENT { return }
                throw BackupError.config("\(key) \(path): cannot read \(current): \(Errno.last.description)")
            }
            let hint = "make it root's and not writable by others (chown root \(current); chmod go-w \(current)), or set \(key) to a root-owned folder"
            guard (st.st_mode & S_IFMT) == S_IFDIR else {
                throw BackupError.config("\(key) \(path): \(current) is not a folder (a symlink?)", hint: "set \(key) to a root-owned folder")
            }
            if st.st_uid != 0 && st.st_uid != geteuid() {
                throw BackupError.config("\(key) \(path): \(current) belongs to uid \(st.st_uid), not root: its owner could plant journals the tool acts on", hint: hint)
            }
            let isTarget = i == parts.count
            let stickyRoot = st.st_mode & S_ISVTX != 0 && st.st_uid == 0
            if st.st_mode & 0o022 != 0 && (isTarget || !stickyRoot) {
                let mode = String(format: "%04o", st.st_mode & 0o7777)
                throw BackupError.config("\(key) \(path): \(current) is writable by other users (mode \(mode)): they could plant journals the tool acts on", hint: hint)
            }
        }
    }
}
