import Foundation
import MSBKit
import MSBArchive

/// `key show`: this host's public signing key, for another host's (or a fresh machine's) `trusted_keys`.
public struct KeyReport: Sendable, Codable {
    /// `ed25519:BASE64`, the form trusted_keys takes.
    public var publicKey: String
    public var keyId: String
    /// The private key's file (root's, 0600).
    public var path: String
    /// True when this call made the key (there was none yet).
    public var created: Bool
}

public enum KeyShow {
    /// Loads this host's key, making it when there is none yet (as the first backup would).
    public static func run(config: Config) throws -> KeyReport {
        try Privilege.requireRoot("key show")
        let (key, created) = try HostKey.loadOrCreate(path: config.signingKey)
        return KeyReport(publicKey: key.publicKey.text, keyId: key.publicKey.id, path: key.path, created: created)
    }
}
