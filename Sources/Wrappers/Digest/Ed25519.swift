import CCrypto

/// Ed25519 signatures through OpenSSL's EVP interface (EVP_PKEY_ED25519). A private key is its
/// 32-byte seed, a public key 32 bytes, a signature 64 bytes.
public enum Ed25519 {
    public static let keyBytes = 32
    public static let signatureBytes = 64

    /// RAND_bytes: `count` bytes from OpenSSL's CSPRNG.
    public static func randomBytes(_ count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        guard RAND_bytes(&out, Int32(count)) == 1 else { throw DigestError(function: "RAND_bytes") }
        return out
    }

    /// EVP_PKEY_new_raw_private_key: the key of a 32-byte seed (the caller frees it).
    static func privateKey(_ seed: [UInt8]) throws -> OpaquePointer {
        guard seed.count == keyBytes, let k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nil, seed, seed.count) else {
            throw DigestError(function: "EVP_PKEY_new_raw_private_key")
        }
        return k
    }

    /// EVP_PKEY_new_raw_public_key: the key of 32 public bytes (the caller frees it).
    static func publicKey(raw: [UInt8]) throws -> OpaquePointer {
        guard raw.count == keyBytes, let k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nil, raw, raw.count) else {
            throw DigestError(function: "EVP_PKEY_new_raw_public_key")
        }
        return k
    }

    /// EVP_PKEY_get_raw_public_key of the seed's key.
    public static func publicKey(seed: [UInt8]) throws -> [UInt8] {
        let k = try privateKey(seed)
        defer { EVP_PKEY_free(k) }
        var out = [UInt8](repeating: 0, count: keyBytes)
        var len = keyBytes
        guard EVP_PKEY_get_raw_public_key(k, &out, &len) == 1, len == keyBytes else {
            throw DigestError(function: "EVP_PKEY_get_raw_public_key")
        }
        return out
    }

    /// EVP_DigestSignInit + EVP_DigestSign (one shot: Ed25519 hashes the message itself).
    public static func sign(_ message: [UInt8], seed: [UInt8]) throws -> [UInt8] {
        let k = try privateKey(seed)
        defer { EVP_PKEY_free(k) }
        guard let ctx = EVP_MD_CTX_new() else { throw DigestError(function: "EVP_MD_CTX_new") }
        defer { EVP_MD_CTX_free(ctx) }
        guard EVP_DigestSignInit(ctx, nil, nil, nil, k) == 1 else { throw DigestError(function: "EVP_DigestSignInit") }
        var sig = [UInt8](repeating: 0, count: signatureBytes)
        var len = signatureBytes
        guard EVP_DigestSign(ctx, &sig, &len, message, message.count) == 1, len == signatureBytes else {
            throw DigestError(function: "EVP_DigestSign")
        }
        return sig
    }

    /// EVP_DigestVerifyInit + EVP_DigestVerify: true only when `signature` is `publicKey`'s over `message`.
    public static func verify(_ signature: [UInt8], of message: [UInt8], publicKey raw: [UInt8]) throws -> Bool {
        guard signature.count == signatureBytes else { return false }
        let k = try publicKey(raw: raw)
        defer { EVP_PKEY_free(k) }
        guard let ctx = EVP_MD_CTX_new() else { throw DigestError(function: "EVP_MD_CTX_new") }
        defer { EVP_MD_CTX_free(ctx) }
        guard EVP_DigestVerifyInit(ctx, nil, nil, nil, k) == 1 else { throw DigestError(function: "EVP_DigestVerifyInit") }
        return EVP_DigestVerify(ctx, signature, signature.count, message, message.count) == 1
    }
}
