import Foundation
import LibArchive
import Digest
#if canImport(Glibc)
import Glibc
#endif

/// What `verify` found; `--json` prints it.
public struct VerifyReport: Sendable, Codable {
    public var status: String
    public var archive: String
    public var createdAt: String
    public var host: String
    public var reason: String
    public var maasVersion: String?
    /// Members checked against the manifest (files, folders, links and dump.sql).
    public var members: Int
    public var compressedBytes: Int64
    public var uncompressedBytes: Int64
    /// SHA-256 of the archive file itself.
    public var sha256: String
    /// "match", or "missing" when there is no `<archive>.manifest.json` beside the archive.
    public var sidecar: String
    public var deep: DeepVerifyResult?
    /// Where the "verified" stamp was written (nil when it could not be).
    public var stamp: String?
    public var durationMs: Double
}

/// Checks an archive against its own manifest without changing anything (but the `.verified` stamp).
///
/// - the gzip stream reads to its end with every CRC-32 and length right, nothing after it;
/// - the tar stream reads to its end; member names are unique and stay below the backed-up paths;
/// - every member matches the manifest's record (type, size, sha256, mode, owner ids and names,
///   mtime, link target), dump.sql matches the manifest's `dump`, and nothing is in the archive
///   that the manifest does not name;
/// - manifest.json is the last member;
/// - the sidecar `<archive>.manifest.json`, when present, equals the manifest inside.
///
/// It cannot tell a careful forger (who rewrites the manifest to fit) from the real thing: the
/// destination folder is root's, mode 0700.
public enum ArchiveVerifier {
    /// Largest manifest.json read into memory.
    static let manifestLimit = 512 << 20

    struct Observed {
        var header: EntryHeader
        var bytes: Int64
        var sha256: String?
    }

    /// Resolves ARCHIVE: a path, or a bare name in the destination.
    public static func resolve(_ archive: String, config: Config) throws -> String {
        var st = stat()
        if stat(archive, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFREG else {
                throw BackupError(.usage, "\(archive) is not a regular file", hint: "give a .tar.gz archive written by maas-snapshot-backup")
            }
            return archive.hasPrefix("/") ? archive : FileManager.default.currentDirectoryPath + "/" + archive
        }
        if !archive.contains("/") {
            let p = config.destination + "/" + archive
            if stat(p, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG { return p }
        }
        throw BackupError(.usage, "the archive \(archive) does not exist", hint: "run `maas-snapshot-backup list` to see the backups")
    }

    /// Full verification. Throws BackupError.data (exit 65) on the first kind of mismatch found.
    public static func verify(archive path: String, checkInterrupted: @escaping @Sendable () throws -> Void = {}) async throws -> (Manifest, VerifyReport) {
        let clock = Stopwatch()
        // The gzip check and the tar pass read the file at the same time, on two threads.
        async let gz = Blocking.run { try GzipIntegrity.check(path: path, checkInterrupted: checkInterrupted) }
        let tarResult: Result<(UncheckedSendable<[String: Observed]>, [UInt8]?), any Error>
        do {
            tarResult = .success(try await Blocking.run { try tarPass(path: path, checkInterrupted: checkInterrupted) })
        } catch {
            tarResult = .failure(error)
        }
        let gzip: GzipIntegrity.Result
        do { gzip = try await gz } catch {
            // A damaged gzip stream explains a failed tar pass better than the tar error does.
            throw error
        }
        let (observedBox, manifestBytes) = try tarResult.get()
        let observed = observedBox.value
        guard let manifestBytes else {
            throw BackupError.data("\(path) has no manifest.json: it is truncated or was not written by maas-snapshot-backup",
                                   hint: "use another backup")
        }
        let manifest = try Manifest.decode(manifestBytes)
        try compare(manifest: manifest, observed: observed, archive: path)

        // The sidecar copy (for `list` and `prune`) must say the same.
        var sidecarState = "missing"
        let sidecar = path + ".manifest.json"
        if let data = FileManager.default.contents(atPath: sidecar) {
            let same = (try? Manifest.decode(Array(data))) == manifest
            guard same else {
                throw BackupError.data("\(sidecar) differs from the manifest.json inside \(path): it was edited or belongs to another archive",
                                       hint: "the manifest inside the archive is the one restore trusts; delete the sidecar and run verify again to rewrite it")
            }
            sidecarState = "match"
        }
        let report = VerifyReport(
            status: "ok", archive: path, createdAt: manifest.createdAt, host: manifest.host, reason: manifest.reason,
            maasVersion: manifest.maasVersion, members: observed.count, compressedBytes: gzip.compressedBytes,
            uncompressedBytes: gzip.uncompressedBytes, sha256: gzip.sha256, sidecar: sidecarState, deep: nil, stamp: nil,
            durationMs: clock.elapsedMs.ms2)
        return (manifest, report)
    }

    /// Writes the sidecar when it is missing (after a successful verify).
    static func restoreSidecar(archive: String, manifest: Manifest) {
        let sidecar = archive + ".manifest.json"
        guard !FileManager.default.fileExists(atPath: sidecar), let bytes = try? manifest.encoded() else { return }
        try? AtomicFile.write(bytes, to: sidecar, mode: 0o600)
    }

    /// Reads every member to its end, hashing file data. Returns what it saw and manifest.json's bytes.
    static func tarPass(path: String, checkInterrupted: () throws -> Void) throws -> (UncheckedSendable<[String: Observed]>, [UInt8]?) {
        var observed: [String: Observed] = [:]
        var manifestBytes: [UInt8]?
        var buffer = [UInt8](repeating: 0, count: 256 * 1024)
        do {
            let reader = try TarReader(path: path)
            while var h = try reader.nextHeader() {
                try checkInterrupted()
                // tar writes folders as "name/".
                while h.kind == .directory && h.path.count > 1 && h.path.hasSuffix("/") { h.path.removeLast(); h.pathBytes?.removeLast() }
                if manifestBytes != nil {
                    throw BackupError.data("\(path): member \(h.path) follows manifest.json, which must be the last member",
                                           hint: "the archive was changed after it was written; use another backup")
                }
                if h.path == "manifest.json" {
                    guard h.kind == .file, h.size <= manifestLimit else {
                        throw BackupError.data("\(path): manifest.json is not a plain file of sane size")
                    }
                    var bytes: [UInt8] = []
                    bytes.reserveCapacity(Int(h.size))
                    try buffer.withUnsafeMutableBytes { buf in
                        while true {
                            let n = try reader.readData(into: buf)
                            if n == 0 { break }
                            bytes += buf[0..<n]
                            if bytes.count > manifestLimit { throw BackupError.data("\(path): manifest.json is too large") }
                        }
                    }
                    manifestBytes = bytes
                    continue
                }
                guard observed[h.key] == nil else {
                    throw BackupError.data("\(path): member \(h.path) appears twice", hint: "the archive was changed after it was written; use another backup")
                }
                var o = Observed(header: h, bytes: 0, sha256: nil)
                if h.kind == .file {
                    let digest = try SHA256()
                    var total: Int64 = 0
                    try buffer.withUnsafeMutableBytes { buf in
                        while true {
                            let n = try reader.readData(into: buf)
                            if n == 0 { break }
                            try digest.update(UnsafeRawBufferPointer(rebasing: buf[0..<n]))
                            total += Int64(n)
                        }
                    }
                    o.bytes = total
                    o.sha256 = try digest.finalizeHex()
                } else {
                    try reader.skipData()
                }
                observed[h.key] = o
            }
        } catch let e as ArchiveError {
            throw BackupError.data("\(path) is damaged or truncated: \(e.message)", hint: "the archive cannot be trusted; use another backup")
        }
        return (UncheckedSendable(observed), manifestBytes)
    }

    /// Member names the manifest may hold: dump.sql, and paths below the backed-up folders.
    static func isSafeMember(_ p: String, roots: [String]) -> Bool {
        if p.isEmpty || p.hasPrefix("/") { return false }
        let parts = p.split(separator: "/", omittingEmptySubsequences: false)
        if parts.contains(where: { $0 == ".." || $0 == "." || $0.isEmpty }) { return false }
        return roots.contains { p == $0 || p.hasPrefix($0 + "/") }
    }

    /// The archive member of a backed-up path ("/var/lib/maas" -> "var/lib/maas").
    static func member(of path: String) -> String {
        var m = Substring(path)
        while m.hasPrefix("/") { m = m.dropFirst() }
        while m.hasSuffix("/") { m = m.dropLast() }
        return String(m)
    }

    static func compare(manifest: Manifest, observed: [String: Observed], archive: String) throws {
        let roots = manifest.paths.map { member(of: $0.path) }
        var problems: [(Int, String)] = []
        func add(_ priority: Int, _ line: String) { problems.append((priority, line)) }
        var expected = Set<String>()
        guard manifest.dump.path == "dump.sql" else {
            throw BackupError.data("\(archive): the manifest names \(manifest.dump.path) as the dump, not dump.sql")
        }
        for rec in manifest.files + [manifest.dump] {
            guard expected.insert(rec.key).inserted else {
                add(0, "\(rec.path): named twice in the manifest")
                continue
            }
            if rec.path != "dump.sql" && !isSafeMember(rec.path, roots: roots) {
                add(0, "\(rec.path): not below the backed-up paths \(roots.joined(separator: ", "))")
                continue
            }
            guard let o = observed[rec.key] else {
                add(0, "\(rec.path): in the manifest but not in the archive")
                continue
            }
            let h = o.header
            if h.kind != rec.type { add(0, "\(rec.path): a \(h.kind.rawValue) in the archive, a \(rec.type.rawValue) in the manifest"); continue }
            let mode = String(format: "%04o", h.permissions)
            if mode != rec.mode { add(2, "\(rec.path): mode \(mode) in the archive, \(rec.mode) in the manifest") }
            if h.uid != rec.uid || h.gid != rec.gid { add(2, "\(rec.path): owner \(h.uid):\(h.gid) in the archive, \(rec.uid):\(rec.gid) in the manifest") }
            if h.uname != rec.user || h.gname != rec.group {
                add(2, "\(rec.path): owner \(h.uname ?? "-"):\(h.gname ?? "-") in the archive, \(rec.user ?? "-"):\(rec.group ?? "-") in the manifest")
            }
            if h.mtime != rec.mtime { add(3, "\(rec.path): mtime \(h.mtime) in the archive, \(rec.mtime) in the manifest") }
            switch rec.type {
            case .file:
                if o.bytes != rec.size || h.size != rec.size {
                    add(0, "\(rec.path): \(o.bytes) bytes in the archive, \(rec.size) in the manifest")
                } else if o.sha256 != rec.sha256 {
                    add(0, "\(rec.path): sha256 \(o.sha256 ?? "-") in the archive, \(rec.sha256 ?? "-") in the manifest")
                }
            case .symlink, .hardlink:
                if h.linkKey != rec.linkKey {
                    add(1, "\(rec.path): links to \(h.linkTarget ?? "-") in the archive, \(rec.linkTarget ?? "-") in the manifest")
                }
                if rec.type == .hardlink, let t = rec.linkTarget, !isSafeMember(t, roots: roots) {
                    add(0, "\(rec.path): hard link to \(t), outside the backed-up paths")
                }
            default:
                break
            }
        }
        for p in observed.keys.sorted() where !expected.contains(p) {
            add(0, "\(observed[p]!.header.path): in the archive but not in the manifest")
        }
        if !problems.isEmpty {
            let first = problems.enumerated().min { a, b in (a.element.0, a.offset) < (b.element.0, b.offset) }!.element.1
            let more = problems.count > 1 ? " (and \(problems.count - 1) more mismatch\(problems.count > 2 ? "es" : ""))" : ""
            throw BackupError.data("\(archive) does not match its manifest: \(first)\(more)",
                                   hint: "the archive was damaged or changed after it was written; use another backup")
        }
    }
}
