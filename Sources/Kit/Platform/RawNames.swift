import Foundation
import PathNames
#if canImport(Glibc)
import Glibc
#endif

/// The entries of a folder as the bytes readdir gives (a name need not be UTF-8: Foundation's
/// listing would replace such a byte, and a rename by that text would miss the file), with a text
/// key for journals that maps back to the bytes: the name itself when it is UTF-8 and has no NUL
/// prefix, else NUL + base64 of the bytes.
public enum RawNames {
    /// The names in `dir` (not `.` and `..`), sorted by their bytes.
    public static func list(_ dir: String) throws -> [[UInt8]] {
        guard let d = opendir(dir) else {
            throw BackupError.failed("cannot read the folder \(dir): \(Errno.last.description)")
        }
        defer { closedir(d) }
        var out: [[UInt8]] = []
        while let e = readdir(d) {
            let name: [UInt8] = withUnsafeBytes(of: e.pointee.d_name) { raw in Array(raw.prefix { $0 != 0 }) }
            if name == [46] || name == [46, 46] { continue }
            out.append(name)
        }
        return out.sorted { $0.lexicographicallyPrecedes($1) }
    }

    /// A name for messages: PathBytes' readable form (each byte that is not UTF-8 as `\xHH`), the
    /// one the archive's records and the manifest use.
    public static func display(_ bytes: [UInt8]) -> String { PathBytes.display(bytes) }

    /// The journal's text for a name.
    public static func key(_ bytes: [UInt8]) -> String {
        if let s = String(validating: bytes, as: UTF8.self), !s.hasPrefix("\u{0}") { return s }
        return "\u{0}" + PathBytes.base64(bytes)
    }

    /// The bytes a key names.
    public static func bytes(_ key: String) -> [UInt8] {
        if key.hasPrefix("\u{0}"), let b = PathBytes.unbase64(String(key.dropFirst())) { return b }
        return Array(key.utf8)
    }

    /// `dir/name` as a NUL-terminated C string, for one system call.
    public static func withPath<R>(_ dir: String, _ name: [UInt8], _ body: (UnsafePointer<CChar>) -> R) -> R {
        let full = Array(dir.utf8) + [UInt8(ascii: "/")] + name + [0]
        return full.withUnsafeBufferPointer { $0.withMemoryRebound(to: CChar.self) { body($0.baseAddress!) } }
    }

    /// lstat(2) of `dir/name`: true when it exists.
    public static func exists(_ dir: String, _ name: [UInt8]) -> Bool {
        var st = stat()
        return withPath(dir, name) { lstat($0, &st) } == 0
    }

    /// rename(2) of `from/name` to `to/name`; errno is set when it returns false.
    public static func move(_ name: [UInt8], from: String, to: String) -> Bool {
        withPath(from, name) { src in withPath(to, name) { dst in rename(src, dst) } } == 0
    }

    /// rmdir(2) of `dir/name`.
    public static func removeEmptyFolder(_ dir: String, _ name: [UInt8]) -> Bool {
        withPath(dir, name) { rmdir($0) } == 0
    }

    /// Removes `dir/name` (a file or a whole tree; TreeRemover's rules).
    public static func removeTree(_ dir: String, _ name: [UInt8]) throws {
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return }
            throw BackupError.failed("cannot open \(dir): \(Errno.last.description)")
        }
        defer { close(fd) }
        try TreeRemover.remove(at: fd, nameBytes: name, display: dir + "/" + display(name))
    }
}
