import Foundation
import MSBKit
import Digest
#if canImport(Glibc)
import Glibc
#endif

/// An Ed25519 public key as the config's `trusted_keys` and `key show` write it: `ed25519:BASE64`.
public struct PublicKey: Sendable, Hashable {
    public let bytes: [UInt8]

    public init?(text: String) {
        guard text.hasPrefix("ed25519:"), let d = Data(base64Encoded: String(text.dropFirst(8))), d.count == Ed25519.keyBytes else { return nil }
        bytes = Array(d)
    }

    init(bytes: [UInt8]) { self.bytes = bytes }

    public var text: String { "ed25519:" + Data(bytes).base64EncodedString() }
    /// The first 8 bytes of the key's SHA-256, in hex: how messages name a key.
    public var id: String { String(((try? SHA256.hex(of: bytes)) ?? "?").prefix(16)) }
}

/// This host's signing key: the 32-byte Ed25519 seed in `signing_key` (default
/// /etc/maas-snapshot-backup/signing-key), one line `ed25519-private:BASE64`, root's, mode 0600.
public struct HostKey: Sendable {
    public let path: String
    let seed: [UInt8]
    public let publicKey: PublicKey

    static let prefix = "ed25519-private:"

    /// The key at `path`, or nil when there is none. Opened without following a symlink; it must be
    /// a regular file owned by root (or the caller) that nobody else can read or write.
    public static func load(path: String) throws -> HostKey? {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else {
            let e = errno
            if e == ENOENT { return nil }
            if e == ELOOP { throw BackupError.config("the signing key \(path) is a symlink", hint: "put the key file itself there (root's, mode 0600)") }
            if e == EACCES { throw BackupError(.noPermission, "cannot read the signing key \(path): \(Errno(rawValue: e).description)", hint: "run as root") }
            throw BackupError.config("cannot open the signing key \(path): \(Errno(rawValue: e).description)")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            throw BackupError.config("the signing key \(path) is not a regular file", hint: "remove it; the next backup makes a new key")
        }
        guard st.st_uid == 0 || st.st_uid == geteuid() else {
            throw BackupError.config("the signing key \(path) is owned by uid \(st.st_uid), not root", hint: "chown root:root \(path) if it is really this host's key")
        }
        guard st.st_mode & 0o077 == 0 else {
            throw BackupError.config("the signing key \(path) is mode \(String(format: "%04o", st.st_mode & 0o7777)): others can read or change it",
                                     hint: "chmod 600 \(path), and make a new key if somebody else may have read it")
        }
        var buf = [UInt8](repeating: 0, count: 256)
        let n = read(fd, &buf, buf.count)
        let text = n > 0 ? String(decoding: buf[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : ""
        guard text.hasPrefix(prefix), let d = Data(base64Encoded: String(text.dropFirst(prefix.count))), d.count == Ed25519.keyBytes else {
            throw BackupError.config("the signing key \(path) is not an Ed25519 key written by maas-snapshot-backup",
                                     hint: "restore it from where you keep it (beside the restic password), or remove it to make a new one")
        }
        return try HostKey(path: path, seed: Array(d))
    }

    init(path: String, seed: [UInt8]) throws {
        self.path = path
        self.seed = seed
        publicKey = PublicKey(bytes: try Ed25519.publicKey(seed: seed))
    }

    /// The key at `path`, made (root's, 0600, O_EXCL) when there is none yet; `created` says so.
    public static func loadOrCreate(path: String) throws -> (key: HostKey, created: Bool) {
        if let k = try load(path: path) { return (k, false) }
        let dir = (path as NSString).deletingLastPathComponent
        if !FileManager.default.fileExists(atPath: dir) {
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        }
        let seed = try Ed25519.randomBytes(Ed25519.keyBytes)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let e = errno
            if e == EEXIST, let k = try load(path: path) { return (k, false) }
            throw BackupError(.cantCreate, "cannot create the signing key \(path): \(Errno(rawValue: e).description)",
                              hint: "set signing_key in the config to a path in a folder only root can write")
        }
        let line = Array((prefix + Data(seed).base64EncodedString() + "\n").utf8)
        var failure: Errno?
        do { try Errno.writeAll(fd, line) } catch { failure = error }
        if failure == nil, fsync(fd) != 0 { failure = .last }
        close(fd)
        if let failure {
            unlink(path)
            throw BackupError(.cantCreate, "cannot write the signing key \(path): \(failure.description)")
        }
        AtomicFile.syncFolder(dir)
        return (try HostKey(path: path, seed: seed), true)
    }

    /// The signature member for `manifest` (manifest.json's exact bytes).
    public func signature(of manifest: [UInt8]) throws -> [UInt8] {
        let sig = ManifestSignature(algorithm: "ed25519", publicKey: publicKey.text, keyId: publicKey.id,
                                    signature: Data(try Ed25519.sign(manifest, seed: seed)).base64EncodedString())
        return try sig.encoded()
    }
}

/// manifest.sig: the member after manifest.json. The manifest holds every member's SHA-256 (files
/// and dump.sql) and the saved .debs' SHA-256, so its signature covers the whole archive.
public struct ManifestSignature: Sendable, Codable, Equatable {
    public static let member = "manifest.sig"
    public var format = 1
    public var algorithm: String
    public var publicKey: String
    public var keyId: String
    public var signature: String

    public init(algorithm: String, publicKey: String, keyId: String, signature: String) {
        self.algorithm = algorithm; self.publicKey = publicKey; self.keyId = keyId; self.signature = signature
    }

    public func encoded() throws -> [UInt8] { Array(try Manifest.encoder().encode(self)) + [0x0A] }
}

/// Who may have made an archive: this host's key and the config's `trusted_keys`.
public enum ArchiveTrust {
    /// This host's public key (when it has one) and the configured ones.
    public static func trustedKeys(config: Config) throws -> [(key: PublicKey, source: String)] {
        var out: [(PublicKey, String)] = []
        if let own = try HostKey.load(path: config.signingKey) { out.append((own.publicKey, "this host")) }
        for t in config.trustedKeys {
            if let k = PublicKey(text: t), !out.contains(where: { $0.0 == k }) { out.append((k, "trusted_keys")) }
        }
        return out
    }

    /// Checks `signature` (manifest.sig's bytes, nil when the archive has none) over `manifest`.
    /// Returns what the report says: "KEYID (this host)", or "unsigned" when allowed.
    public static func check(manifest: [UInt8], signature: [UInt8]?, archive: String, config: Config?, allowUnsigned: Bool) throws -> String {
        guard let signature else {
            guard allowUnsigned else {
                throw BackupError.data("\(archive) is not signed: it was made before archives were signed, or its signature was removed",
                                       hint: "if you know where it comes from, give --allow-unsigned (its members are still checked against its manifest, but not who wrote the manifest)")
            }
            return "unsigned"
        }
        let sig: ManifestSignature
        do { sig = try Manifest.decoder().decode(ManifestSignature.self, from: Data(signature)) } catch {
            throw BackupError.data("\(archive): manifest.sig is not a signature written by maas-snapshot-backup", hint: "the archive was changed; use another backup")
        }
        guard sig.format == 1, sig.algorithm == "ed25519", let key = PublicKey(text: sig.publicKey),
              let raw = Data(base64Encoded: sig.signature) else {
            throw BackupError.data("\(archive): manifest.sig names an unknown algorithm or key form", hint: "the archive was changed; use another backup")
        }
        let trusted = try config.map(trustedKeys) ?? []
        guard let source = trusted.first(where: { $0.key == key })?.source else {
            throw BackupError.data("\(archive) is signed by key \(key.id), which is not trusted here",
                                   hint: "if a host you trust made it, run `maas-snapshot-backup key show` there and add the key it prints (id \(key.id)) to trusted_keys in the config")
        }
        guard try Ed25519.verify(Array(raw), of: manifest, publicKey: key.bytes) else {
            throw BackupError.data("\(archive): the manifest's signature by key \(key.id) does not match: the manifest was changed after it was signed",
                                   hint: "the archive cannot be trusted; use another backup")
        }
        return "\(key.id) (\(source))"
    }
}
