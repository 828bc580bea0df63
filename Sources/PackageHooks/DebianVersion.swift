import MSBKit
import MSBPackages
/// Debian version strings (`[epoch:]upstream[-revision]`) compared exactly as dpkg does
/// (deb-version(7), lib/dpkg/version.c): pure Swift, no subprocess.
public struct DebianVersion: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var epoch: Int
    public var upstream: String
    public var revision: String
    /// The text as it was given.
    public var description: String

    /// Parses loosely, like dpkg's comparison does: a missing or non-numeric epoch counts as 0,
    /// the revision is what follows the last hyphen.
    public init(_ text: String) {
        description = text
        var rest = Substring(text)
        if let colon = rest.firstIndex(of: ":") {
            epoch = Int(rest[..<colon]) ?? 0
            rest = rest[rest.index(after: colon)...]
        } else {
            epoch = 0
        }
        if let dash = rest.lastIndex(of: "-") {
            upstream = String(rest[..<dash])
            revision = String(rest[rest.index(after: dash)...])
        } else {
            upstream = String(rest)
            revision = ""
        }
    }

    /// dpkg's `verrevcmp` weight of one character.
    private static func order(_ c: UInt8?) -> Int {
        guard let c else { return 0 }
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return 0
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"): return Int(c)
        case UInt8(ascii: "~"): return -1
        default: return Int(c) + 256
        }
    }

    private static func isDigit(_ c: UInt8?) -> Bool {
        guard let c else { return false }
        return c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")
    }

    /// dpkg's `verrevcmp`: negative, zero or positive.
    static package func compareParts(_ a: String, _ b: String) -> Int {
        let a = Array(a.utf8), b = Array(b.utf8)
        var i = 0, j = 0
        func at(_ s: [UInt8], _ k: Int) -> UInt8? { k < s.count ? s[k] : nil }
        while i < a.count || j < b.count {
            var firstDiff = 0
            while (at(a, i) != nil && !isDigit(at(a, i))) || (at(b, j) != nil && !isDigit(at(b, j))) {
                let ac = order(at(a, i)), bc = order(at(b, j))
                if ac != bc { return ac - bc }
                i += 1
                j += 1
            }
            while at(a, i) == UInt8(ascii: "0") { i += 1 }
            while at(b, j) == UInt8(ascii: "0") { j += 1 }
            while isDigit(at(a, i)) && isDigit(at(b, j)) {
                if firstDiff == 0 { firstDiff = Int(a[i]) - Int(b[j]) }
                i += 1
                j += 1
            }
            if isDigit(at(a, i)) { return 1 }
            if isDigit(at(b, j)) { return -1 }
            if firstDiff != 0 { return firstDiff }
        }
        return 0
    }

    /// Negative when `a` is older than `b`, zero when equal, positive when newer.
    public static func compare(_ a: DebianVersion, _ b: DebianVersion) -> Int {
        if a.epoch != b.epoch { return a.epoch < b.epoch ? -1 : 1 }
        let u = compareParts(a.upstream, b.upstream)
        if u != 0 { return u }
        return compareParts(a.revision, b.revision)
    }

    public static func < (lhs: DebianVersion, rhs: DebianVersion) -> Bool { compare(lhs, rhs) < 0 }
    public static func == (lhs: DebianVersion, rhs: DebianVersion) -> Bool { compare(lhs, rhs) == 0 }
    public func hash(into hasher: inout Hasher) {
        // Equal versions ("1.0" and "0:1.0", "1.00") must hash alike: hash only the epoch.
        hasher.combine(epoch)
    }
}
