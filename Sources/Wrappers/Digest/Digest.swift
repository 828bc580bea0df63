import CCrypto

/// An error from OpenSSL's EVP interface.
public struct DigestError: Error, Sendable, CustomStringConvertible {
    public var function: String
    public var description: String { "\(function) failed" }
}

/// SHA-256 over a stream (EVP_DigestInit_ex / EVP_DigestUpdate / EVP_DigestFinal_ex).
public final class SHA256 {
    private let ctx: OpaquePointer

    /// EVP_MD_CTX_new + EVP_DigestInit_ex(EVP_sha256()).
    public init() throws {
        guard let c = EVP_MD_CTX_new() else { throw DigestError(function: "EVP_MD_CTX_new") }
        guard EVP_DigestInit_ex(c, EVP_sha256(), nil) == 1 else {
            EVP_MD_CTX_free(c)
            throw DigestError(function: "EVP_DigestInit_ex")
        }
        ctx = c
    }

    deinit { EVP_MD_CTX_free(ctx) }

    /// EVP_DigestUpdate.
    public func update(_ bytes: UnsafeRawBufferPointer) throws {
        guard bytes.count > 0 else { return }
        guard EVP_DigestUpdate(ctx, bytes.baseAddress, bytes.count) == 1 else {
            throw DigestError(function: "EVP_DigestUpdate")
        }
    }

    /// EVP_DigestFinal_ex, as lowercase hex.
    public func finalizeHex() throws -> String {
        var out = [UInt8](repeating: 0, count: 32)
        var len: UInt32 = 0
        guard EVP_DigestFinal_ex(ctx, &out, &len) == 1 else { throw DigestError(function: "EVP_DigestFinal_ex") }
        let hex: [Character] = Array("0123456789abcdef")
        var s = ""
        s.reserveCapacity(64)
        for b in out.prefix(Int(len)) {
            s.append(hex[Int(b >> 4)])
            s.append(hex[Int(b & 0xf)])
        }
        return s
    }

    public static func hex(of bytes: [UInt8]) throws -> String {
        let h = try SHA256()
        try bytes.withUnsafeBytes { try h.update($0) }
        return try h.finalizeHex()
    }
}
