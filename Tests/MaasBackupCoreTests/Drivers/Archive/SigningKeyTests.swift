import Foundation
import MaasBackupCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The host signing key and the manifest signature check (issue 23), without an archive.
@Suite struct SigningKeyTests {
    func folder() throws -> String {
        let d = NSTemporaryDirectory() + "/msb-key-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        return d
    }

    func config(key: String, trusted: [String] = []) throws -> Config {
        try Config.parse(yaml: "signing_key: \(key)\n" + (trusted.isEmpty ? "" : "trusted_keys:\n" + trusted.map { "  - \($0)\n" }.joined()))
    }

    @Test func aKeyIsMadeOnceRootsAndPrivateAndSignsWhatOnlyItVerifies() throws {
        let d = try folder()
        defer { try? FileManager.default.removeItem(atPath: d) }
        let (k, created) = try HostKey.loadOrCreate(path: d + "/signing-key")
        #expect(created)
        var st = stat()
        #expect(lstat(d + "/signing-key", &st) == 0 && st.st_mode & 0o777 == 0o600)
        let (again, createdAgain) = try HostKey.loadOrCreate(path: d + "/signing-key")
        #expect(!createdAgain && again.publicKey == k.publicKey)
        #expect(PublicKey(text: k.publicKey.text) == k.publicKey && k.publicKey.id.count == 16)

        let manifest = Array("{\"files\": []}\n".utf8)
        let sig = try k.signature(of: manifest)
        let cfg = try config(key: d + "/signing-key")
        #expect(try ArchiveTrust.check(manifest: manifest, signature: sig, archive: "a", config: cfg, allowUnsigned: false) == "\(k.publicKey.id) (this host)")
        // One changed byte of the manifest.
        var changed = manifest
        changed[3] ^= 1
        #expect(throws: BackupError.self) { try ArchiveTrust.check(manifest: changed, signature: sig, archive: "a", config: cfg, allowUnsigned: false) }
        // No signature: only when allowed.
        #expect(throws: BackupError.self) { try ArchiveTrust.check(manifest: manifest, signature: nil, archive: "a", config: cfg, allowUnsigned: false) }
        #expect(try ArchiveTrust.check(manifest: manifest, signature: nil, archive: "a", config: cfg, allowUnsigned: true) == "unsigned")

        // Another host's key: untrusted until listed.
        let (other, _) = try HostKey.loadOrCreate(path: d + "/other-key")
        let otherSig = try other.signature(of: manifest)
        do {
            _ = try ArchiveTrust.check(manifest: manifest, signature: otherSig, archive: "a", config: cfg, allowUnsigned: true)
            Issue.record("an untrusted key was accepted")
        } catch let e as BackupError {
            #expect(e.code == .dataError && e.message.contains(other.publicKey.id))
        }
        let trusting = try config(key: d + "/signing-key", trusted: [other.publicKey.text])
        #expect(try ArchiveTrust.check(manifest: manifest, signature: otherSig, archive: "a", config: trusting, allowUnsigned: false)
                == "\(other.publicKey.id) (trusted_keys)")
    }

    @Test func aKeyFileOthersCanReadOrASymlinkIsRefused() throws {
        let d = try folder()
        defer { try? FileManager.default.removeItem(atPath: d) }
        _ = try HostKey.loadOrCreate(path: d + "/signing-key")
        chmod(d + "/signing-key", 0o640)
        #expect(throws: BackupError.self) { try HostKey.load(path: d + "/signing-key") }
        chmod(d + "/signing-key", 0o600)
        symlink(d + "/signing-key", d + "/link")
        #expect(throws: BackupError.self) { try HostKey.load(path: d + "/link") }
        try "ed25519-private:short\n".write(toFile: d + "/bad", atomically: false, encoding: .utf8)
        chmod(d + "/bad", 0o600)
        #expect(throws: BackupError.self) { try HostKey.load(path: d + "/bad") }
        #expect(try HostKey.load(path: d + "/missing") == nil)
    }

    @Test func trustedKeysMustBeEd25519PublicKeys() throws {
        #expect(throws: BackupError.self) { try Config.parse(yaml: "trusted_keys:\n  - ssh-ed25519 AAAA\n") }
        #expect(throws: BackupError.self) { try Config.parse(yaml: "trusted_keys:\n  - ed25519:c2hvcnQ=\n") }
        let k = "ed25519:" + Data(repeating: 7, count: 32).base64EncodedString()
        #expect(try Config.parse(yaml: "trusted_keys:\n  - \(k)\n").trustedKeys == [k])
    }

    @Test func fetchingNeedsRoomForTheTarAndItsGzip() {
        #expect(RemoteOperations.fetchBytesNeeded(tar: 1 << 30) > 2 << 30)
    }
}
