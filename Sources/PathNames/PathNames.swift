// Names as bytes and the kind of a tar member: what the libarchive wrapper and the kit's records
// share, below both (no dependency, no Foundation).

/// The kind of a tar member.
public enum EntryKind: String, Sendable, Codable {
    case file, directory, symlink, hardlink, other
}

/// File names as bytes: readable and reversible forms of names that are not valid UTF-8.
public enum PathBytes {
    /// (`display(bytes)`, nil) for valid UTF-8, else (`display(bytes)`, bytes).
    public static func split(_ bytes: [UInt8]) -> (String, [UInt8]?) {
        if let s = String(validating: bytes, as: UTF8.self) { return (s, nil) }
        return (display(bytes), bytes)
    }

    /// The name as text: valid UTF-8 as it is, every other byte as `\xHH`. Readable, not
    /// reversible on its own (the bytes are kept beside it).
    public static func display(_ bytes: [UInt8]) -> String {
        if let s = String(validating: bytes, as: UTF8.self) { return s }
        var out = ""
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            let n = b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC2 ? 2 : 0
            if n > 0, i + n <= bytes.count, let s = String(validating: bytes[i..<(i + n)], as: UTF8.self) {
                out += s
                i += n
            } else {
                let hex = Array("0123456789ABCDEF")
                out += "\\x" + String(hex[Int(b >> 4)]) + String(hex[Int(b & 15)])
                i += 1
            }
        }
        return out
    }

    /// A key unique per byte string: the text for valid UTF-8, else NUL + base64 of the bytes.
    public static func key(path: String, bytes: [UInt8]?) -> String {
        guard let bytes else { return path }
        return "\u{0}" + base64(bytes)
    }

    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Standard base64 with padding.
    public static func base64(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i < bytes.count {
            let b0 = UInt32(bytes[i]), b1 = i + 1 < bytes.count ? UInt32(bytes[i + 1]) : 0, b2 = i + 2 < bytes.count ? UInt32(bytes[i + 2]) : 0
            let v = b0 << 16 | b1 << 8 | b2
            out.append(alphabet[Int(v >> 18 & 63)])
            out.append(alphabet[Int(v >> 12 & 63)])
            out.append(i + 1 < bytes.count ? alphabet[Int(v >> 6 & 63)] : UInt8(ascii: "="))
            out.append(i + 2 < bytes.count ? alphabet[Int(v & 63)] : UInt8(ascii: "="))
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes standard base64 (padding optional); nil when it is not base64.
    public static func unbase64(_ s: String) -> [UInt8]? {
        var table = [Int](repeating: -1, count: 256)
        for (i, c) in alphabet.enumerated() { table[Int(c)] = i }
        var out: [UInt8] = []
        var acc: UInt32 = 0, bits = 0
        for c in s.utf8 where c != UInt8(ascii: "=") {
            let v = table[Int(c)]
            if v < 0 { return nil }
            acc = acc << 6 | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(acc >> UInt32(bits) & 0xFF))
            }
        }
        return out
    }
}
