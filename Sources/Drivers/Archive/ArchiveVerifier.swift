import Foundation
import MSBKit
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
    /// The key that signed the manifest ("KEYID (this host)" or "KEYID (trusted_keys)"), or
    /// "unsigned" when --allow-unsigned let an unsigned archive through.
    public var signedBy: String
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
/// - no member has the setuid or setgid bit or extended attributes (file capabilities): the backup
///   never writes them, so such a member means the archive was forged;
/// - manifest.json is the last member but manifest.sig, the Ed25519 signature of its bytes by this
///   host's key or one of the config's `trusted_keys` (ArchiveTrust); an unsigned archive only with
///   `allowUnsigned`;
/// - the sidecar `<archive>.manifest.json`, when present, equals the manifest inside.
public enum ArchiveVerifier {
    /// Largest manifest.json read into memory.
    static package let manifestLimit = 512 << 20

    package struct Observed {
        package var header: EntryHeader
        package var bytes: Int64
        package var sha256: String?
    }

    /// Opens ARCHIVE once (see ArchiveSource): a path (with a `/`), or a bare name, which is looked up
    /// in the destination only (never in the current folder, where anybody may have put a file).
    public static func open(_ archive: String, config: Config) throws -> ArchiveSource {
        if archive.contains("/") {
            return try ArchiveSource(path: archive.hasPrefix("/") ? archive : FileManager.default.currentDirectoryPath + "/" + archive)
        }
        var st = stat()
        let p = config.destination + "/" + archive
        if lstat(p, &st) == 0 { return try ArchiveSource(path: p) }
        if lstat(archive, &st) == 0 {
            throw BackupError(.usage, "the archive \(archive) is not in the destination \(config.destination)",
                              hint: "a bare name means a backup in the destination; to use the file in the current folder, give ./\(archive)")
        }
        throw BackupError(.usage, "the archive \(archive) does not exist", hint: "run `maas-snapshot-backup list` to see the backups")
    }

    /// Full verification. Throws BackupError.data (exit 65) on the first kind of mismatch found.
    /// With `config`, the manifest's paths must be configured ones (see `checkShape`).
    public static func verify(_ source: ArchiveSource, config: Config?, allowUnsigned: Bool = false,
                              checkInterrupted: @escaping @Sendable () throws -> Void = {}) async throws -> (Manifest, VerifyReport) {
        let clock = Stopwatch()
        let path = source.path, readPath = source.readPath
        // The gzip check and the tar pass read the file at the same time, on two threads.
        async let gz = Blocking.run { try GzipIntegrity.check(path: readPath, checkInterrupted: checkInterrupted) }
        let tarResult: Result<(UncheckedSendable<[String: Observed]>, [UInt8]?, [UInt8]?), any Error>
        do {
            tarResult = .success(try await Blocking.run { try tarPass(path: readPath, display: path, checkInterrupted: checkInterrupted) })
        } catch {
            tarResult = .failure(error)
        }
        let gzip: GzipIntegrity.Result
        do { gzip = try await gz } catch {
            // A damaged gzip stream explains a failed tar pass better than the tar error does.
            throw error
        }
        let (observedBox, manifestBytes, signatureBytes) = try tarResult.get()
        let observed = observedBox.value
        guard let manifestBytes else {
            throw BackupError.data("\(path) has no manifest.json: it is truncated or was not written by maas-snapshot-backup",
                                   hint: "use another backup")
        }
        let manifest = try Manifest.decode(manifestBytes)
        try checkShape(manifest, archive: path, config: config)
        try compare(manifest: manifest, observed: observed, archive: path)
        let signedBy = try ArchiveTrust.check(manifest: manifestBytes, signature: signatureBytes, archive: path, config: config,
                                              allowUnsigned: allowUnsigned)

        // The sidecar copy (for `list` and `prune`) must say the same.
        var sidecarState = "missing"
        let sidecar = path + ArchiveName.sidecarExtension
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
            uncompressedBytes: gzip.uncompressedBytes, sha256: gzip.sha256, sidecar: sidecarState, signedBy: signedBy, deep: nil, stamp: nil,
            durationMs: clock.elapsedMs.ms2)
        return (manifest, report)
    }

    /// Writes the sidecar when it is missing (after a successful verify).
    static package func restoreSidecar(archive: String, manifest: Manifest) {
        let sidecar = archive + ArchiveName.sidecarExtension
        guard !FileManager.default.fileExists(atPath: sidecar), let bytes = try? manifest.encoded() else { return }
        try? AtomicFile.write(bytes, to: sidecar, mode: 0o600)
    }

    /// Reads every member to its end, hashing file data. Returns what it saw, manifest.json's bytes
    /// and manifest.sig's (nil when the archive has none).
    static package func tarPass(path readPath: String, display path: String, checkInterrupted: () throws -> Void) throws -> (UncheckedSendable<[String: Observed]>, [UInt8]?, [UInt8]?) {
        var observed: [String: Observed] = [:]
        var manifestBytes: [UInt8]?, signatureBytes: [UInt8]?
        do {
            let reader = try TarReader(path: readPath)
            while var h = try reader.nextHeader() {
                try checkInterrupted()
                guard h.kind != .other else {
                    throw BackupError.data("\(path): member \(h.path) is a device, FIFO or socket, which maas-snapshot-backup never writes",
                                           hint: "the archive was not written by this tool or was changed; use another backup")
                }
                try refuseSpecialBits(h, xattrs: reader.currentXattrNames(), archive: path)
                // tar writes folders as "name/".
                while h.kind == .directory && h.path.count > 1 && h.path.hasSuffix("/") { h.path.removeLast(); h.pathBytes?.removeLast() }
                if signatureBytes != nil || (manifestBytes != nil && h.path != ManifestSignature.member) {
                    throw BackupError.data("\(path): member \(h.path) follows manifest.json, which must be the last member (but its signature)",
                                           hint: "the archive was changed after it was written; use another backup")
                }
                if h.path == "manifest.json" || (h.path == ManifestSignature.member && manifestBytes != nil) {
                    let bytes = try readSmall(reader, h, archive: path)
                    if h.path == "manifest.json" { manifestBytes = bytes } else { signatureBytes = bytes }
                    continue
                }
                guard observed[h.key] == nil else {
                    throw BackupError.data("\(path): member \(h.path) appears twice", hint: "the archive was changed after it was written; use another backup")
                }
                var o = Observed(header: h, bytes: 0, sha256: nil)
                if h.kind == .file {
                    let digest = try SHA256()
                    var total: Int64 = 0
                    try reader.forEachChunk { chunk in
                        try digest.update(chunk)
                        total += Int64(chunk.count)
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
        return (UncheckedSendable(observed), manifestBytes, signatureBytes)
    }

    /// manifest.json or manifest.sig, read into memory (a plain file of at most `manifestLimit` bytes).
    static func readSmall(_ reader: TarReader, _ h: EntryHeader, archive path: String) throws -> [UInt8] {
        guard h.kind == .file, h.size <= manifestLimit else {
            throw BackupError.data("\(path): \(h.path) is not a plain file of sane size")
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Int(h.size))
        try reader.forEachChunk { chunk in
            bytes += chunk
            if bytes.count > manifestLimit { throw BackupError.data("\(path): \(h.path) is too large") }
        }
        return bytes
    }

    /// Setuid, setgid and extended attributes (security.capability and any other): the backup
    /// strips the bits and writes no attributes, so a member that has them was put there by someone else.
    static func refuseSpecialBits(_ h: EntryHeader, xattrs: [String], archive path: String) throws {
        if h.permissions & 0o6000 != 0 {
            let bits = [h.permissions & 0o4000 != 0 ? "setuid" : nil, h.permissions & 0o2000 != 0 ? "setgid" : nil].compactMap { $0 }
            throw BackupError.data("\(path): member \(h.path) is \(bits.joined(separator: " and ")) (mode \(String(format: "%04o", h.permissions)), owner \(h.uid)), which maas-snapshot-backup never writes",
                                   hint: "the archive was forged or changed; use another backup")
        }
        if !xattrs.isEmpty {
            throw BackupError.data("\(path): member \(h.path) carries extended attributes (\(xattrs.joined(separator: ", "))), which maas-snapshot-backup never writes",
                                   hint: "the archive was forged or changed; use another backup")
        }
    }

    /// Member names the manifest may hold: dump.sql, and paths below the backed-up folders.
    static package func isSafeMember(_ p: String, roots: [String]) -> Bool {
        if p.isEmpty || p.hasPrefix("/") { return false }
        let parts = p.split(separator: "/", omittingEmptySubsequences: false)
        if parts.contains(where: { $0 == ".." || $0 == "." || $0.isEmpty }) { return false }
        return roots.contains { p == $0 || p.hasPrefix($0 + "/") }
    }

    /// The archive member of a backed-up path ("/var/lib/maas" -> "var/lib/maas").
    static package func member(of path: String) -> String {
        var m = Substring(path)
        while m.hasPrefix("/") { m = m.dropFirst() }
        while m.hasSuffix("/") { m = m.dropLast() }
        return String(m)
    }

    /// An absolute path of plain components: no empty, `.` or `..` component, no trailing `/`.
    static package func isPlainAbsolute(_ p: String) -> Bool {
        guard p.hasPrefix("/"), p.count > 1, !p.hasSuffix("/") else { return false }
        return !p.dropFirst().split(separator: "/", omittingEmptySubsequences: false).contains { $0.isEmpty || $0 == "." || $0 == ".." }
    }

    /// What the manifest says restore should touch: at least one path, each a plain absolute path and,
    /// with `config`, one of the configured `paths` (a manifest naming /etc must not make restore move
    /// the host's /etc aside); `exclude` entries below those paths; saved .debs named as files in the
    /// archive's own `<name>.debs/` folder.
    static package func checkShape(_ m: Manifest, archive: String, config: Config?) throws {
        func refuse(_ why: String, hint: String = "the archive was not written by this tool or was changed; use another backup") -> BackupError {
            BackupError.data("\(archive): the manifest \(why)", hint: hint)
        }
        guard !m.paths.isEmpty else { throw refuse("names no backed-up path") }
        var seen = Set<String>()
        for p in m.paths {
            guard isPlainAbsolute(p.path) else { throw refuse("names the path '\(p.path)', which is not a plain absolute path") }
            guard seen.insert(p.path).inserted else { throw refuse("names \(p.path) twice") }
            if let config, !config.paths.contains(p.path) {
                throw refuse("names \(p.path), which is not one of the configured paths (\(config.paths.joined(separator: ", ")))",
                             hint: "restore and verify only touch the paths in the config's `paths`; use an archive of this region, or add the path there if it really is one")
            }
        }
        for ex in m.exclude {
            guard isPlainAbsolute(ex), m.paths.contains(where: { ex == $0.path || ex.hasPrefix($0.path + "/") }) else {
                throw refuse("excludes '\(ex)', which is not a plain path below the backed-up paths")
            }
        }
        for (pkg, rel) in (m.savedDebs ?? [:]).sorted(by: { $0.key < $1.key }) {
            guard savedDebName(rel) != nil else {
                throw refuse("names '\(rel)' as the saved .deb of \(pkg): it must be a .deb file in the archive's own <name>.debs/ folder")
            }
        }
    }

    /// The file name of a saved .deb (`<name>.debs/<file>.deb`), or nil when `rel` is anything else.
    public static func savedDebName(_ rel: String) -> String? {
        let parts = rel.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].hasSuffix(".debs"), !parts[0].hasPrefix("."),
              parts[1].hasSuffix(".deb"), !parts[1].hasPrefix("."), !parts[1].isEmpty else { return nil }
        return String(parts[1])
    }

    static package func compare(manifest: Manifest, observed: [String: Observed], archive: String) throws {
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
