import Foundation
import Yams

/// Yams.compose for files a less trusted user may write (the config, regiond.conf, rackd.conf):
/// YAML anchors and aliases are refused before anything is composed. Neither file ever needs them,
/// and a "billion laughs" (an alias used as a mapping key, 10^9 expansions from 400 bytes) would
/// otherwise keep the composer busy for minutes, ignoring SIGTERM. The scan is linear in the text.
public enum SafeYAML {
    /// Throws `BackupError.config` (exit 78) naming `source` and the line when the text uses an
    /// anchor or an alias; parse errors are left to Yams.compose.
    public static func refuseAliases(_ yaml: String, source: String) throws {
        var scanner = AnchorScanner(Array(yaml.utf8))
        guard let found = scanner.first() else { return }
        let what = found.alias ? "an alias (*name)" : "an anchor (&name)"
        throw BackupError.config("\(source) line \(found.line): YAML anchors and aliases are not allowed, found \(what)",
                                 hint: "write the values out in full")
    }

    /// `refuseAliases`, then Yams.compose.
    public static func compose(_ yaml: String, source: String) throws -> Node? {
        try refuseAliases(yaml, source: source)
        return try Yams.compose(yaml: yaml)
    }
}

/// The first ANCHOR or ALIAS token of a YAML text, found the way libyaml's scanner finds tokens
/// (the one Yams composes with): a `&` or `*` counts only where a token starts, never inside a
/// plain, quoted or block scalar or a comment. It keeps libyaml's block indentation (the column of
/// each block collection) because that decides where a plain or block scalar ends. Yams exports no
/// product for libyaml's event API, so this reads the text itself rather than Yams' internal module.
/// On text libyaml cannot scan it may answer differently; Yams.compose then reports the error.
struct AnchorScanner {
    private let text: [UInt8]
    private var i = 0
    private var line = 1
    private var column = 0
    private var flowLevel = 0
    /// libyaml's indent stack: the column of each open block collection.
    private var indents: [Int] = []
    private var simpleKeyAllowed = true
    /// Where the latest token that could be a simple key started (line, column).
    private var simpleKey: (line: Int, column: Int)?

    init(_ text: [UInt8]) { self.text = text }

    private var indent: Int { indents.last ?? -1 }
    private func byte(_ k: Int = 0) -> UInt8 { i + k < text.count ? text[i + k] : 0 }
    private func isBreak(_ k: Int = 0) -> Bool { byte(k) == 0x0A || byte(k) == 0x0D }
    private func isBlank(_ k: Int = 0) -> Bool { byte(k) == 0x20 || byte(k) == 0x09 }
    private func isEnd(_ k: Int = 0) -> Bool { i + k >= text.count }
    private func isBlankOrEnd(_ k: Int = 0) -> Bool { isBlank(k) || isBreak(k) || isEnd(k) }
    private func isFlowIndicator(_ k: Int = 0) -> Bool { [UInt8(ascii: ","), UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: "{"), UInt8(ascii: "}")].contains(byte(k)) }

    private mutating func advance() {
        guard i < text.count else { return }
        if (text[i] & 0xC0) != 0x80 { column += 1 }
        i += 1
    }

    private mutating func skipBreak() {
        if byte() == 0x0D && byte(1) == 0x0A { i += 1 }
        i += 1
        line += 1
        column = 0
    }

    private mutating func roll(_ col: Int) { if col > indent { indents.append(col) } }
    private mutating func unroll(_ col: Int) { while let last = indents.last, last > col { indents.removeLast() } }

    mutating func first() -> (line: Int, alias: Bool)? {
        if byte() == 0xEF && byte(1) == 0xBB && byte(2) == 0xBF { i += 3 }
        while true {
            skipToToken()
            if isEnd() { return nil }
            if flowLevel == 0 { unroll(column) }
            let c = byte(), col = column
            if col == 0 && c == UInt8(ascii: "%") { skipLine(); continue }
            if col == 0 && (c == UInt8(ascii: "-") || c == UInt8(ascii: ".")) && byte(1) == c && byte(2) == c && isBlankOrEnd(3) {
                for _ in 0..<3 { advance() }
                unroll(-1); simpleKeyAllowed = true; simpleKey = nil
                continue
            }
            switch c {
            case UInt8(ascii: "*"): return (line, true)
            case UInt8(ascii: "&"): return (line, false)
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                saveSimpleKey(); flowLevel += 1; simpleKeyAllowed = true; advance()
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                flowLevel = max(0, flowLevel - 1); simpleKeyAllowed = false; advance()
            case UInt8(ascii: ","):
                simpleKeyAllowed = true; advance()
            case UInt8(ascii: "-") where isBlankOrEnd(1):
                if flowLevel == 0 { roll(col) }
                simpleKeyAllowed = true; simpleKey = nil; advance()
            case UInt8(ascii: "?") where flowLevel > 0 || isBlankOrEnd(1):
                if flowLevel == 0 { roll(col) }
                simpleKeyAllowed = flowLevel == 0; simpleKey = nil; advance()
            case UInt8(ascii: ":") where flowLevel > 0 || isBlankOrEnd(1):
                if flowLevel == 0 {
                    if let k = simpleKey, k.line == line { roll(k.column) } else { roll(col) }
                }
                simpleKeyAllowed = flowLevel == 0; simpleKey = nil; advance()
            case UInt8(ascii: "!"):
                saveSimpleKey(); simpleKeyAllowed = false
                while !isBlankOrEnd() { advance() }
            case UInt8(ascii: "|") where flowLevel == 0, UInt8(ascii: ">") where flowLevel == 0:
                simpleKeyAllowed = true; simpleKey = nil
                blockScalar()
            case UInt8(ascii: "'"), UInt8(ascii: "\""):
                saveSimpleKey(); simpleKeyAllowed = false
                quoted(c)
            case UInt8(ascii: "@"), UInt8(ascii: "`"):
                return nil  // reserved: libyaml stops with a scanner error here
            default:
                saveSimpleKey(); simpleKeyAllowed = false
                plainScalar()
            }
        }
    }

    private mutating func saveSimpleKey() {
        if simpleKeyAllowed { simpleKey = (line, column) }
    }

    /// Spaces (and tabs where libyaml allows them), comments and line breaks.
    private mutating func skipToToken() {
        while !isEnd() {
            while byte() == 0x20 || ((flowLevel > 0 || !simpleKeyAllowed) && byte() == 0x09) { advance() }
            if byte() == UInt8(ascii: "#") { while !isBreak() && !isEnd() { advance() } }
            guard isBreak() else { return }
            skipBreak()
            if flowLevel == 0 { simpleKeyAllowed = true }
        }
    }

    private mutating func skipLine() {
        while !isBreak() && !isEnd() { advance() }
    }

    private mutating func quoted(_ quote: UInt8) {
        advance()
        while !isEnd() {
            let c = byte()
            if isBreak() { skipBreak(); continue }
            if quote == UInt8(ascii: "'") && c == quote {
                if byte(1) == quote { advance(); advance(); continue }
                advance(); return
            }
            if quote == UInt8(ascii: "\"") && c == UInt8(ascii: "\\") {
                advance()
                if isBreak() { skipBreak() } else { advance() }
                continue
            }
            if quote == UInt8(ascii: "\"") && c == quote { advance(); return }
            advance()
        }
    }

    /// libyaml's yaml_parser_scan_plain_scalar: words separated by blanks and line breaks, ended
    /// by ": ", " #", a flow indicator in a flow collection, or (block context) a line indented no
    /// deeper than the enclosing collection.
    private mutating func plainScalar() {
        let minColumn = indent + 1
        while true {
            if column == 0 && (byte() == UInt8(ascii: "-") || byte() == UInt8(ascii: ".")) && byte(1) == byte() && byte(2) == byte() && isBlankOrEnd(3) { return }
            if byte() == UInt8(ascii: "#") { return }
            while !isBlankOrEnd() {
                if byte() == UInt8(ascii: ":") && (isBlankOrEnd(1) || (flowLevel > 0 && isFlowIndicator(1))) { return }
                if flowLevel > 0 && isFlowIndicator() { return }
                advance()
            }
            guard isBlank() || isBreak() else { return }
            var crossedLine = false
            while isBlank() || isBreak() {
                if isBreak() { skipBreak(); crossedLine = true } else { advance() }
            }
            if crossedLine && flowLevel == 0 { simpleKeyAllowed = true }
            if flowLevel == 0 && column < minColumn { return }
            if isEnd() { return }
        }
    }

    /// libyaml's yaml_parser_scan_block_scalar: the header, then every line indented at least as
    /// deep as the first non-empty one (or the explicit indentation).
    private mutating func blockScalar() {
        advance()
        var increment = 0
        for _ in 0..<2 {
            let c = byte()
            if c == UInt8(ascii: "+") || c == UInt8(ascii: "-") { advance() }
            else if c >= UInt8(ascii: "1") && c <= UInt8(ascii: "9") { increment = Int(c - UInt8(ascii: "0")); advance() }
        }
        while isBlank() { advance() }
        if byte() == UInt8(ascii: "#") { skipLine() }
        guard isBreak() else { return }  // libyaml: a scanner error
        skipBreak()
        var blockIndent = increment > 0 ? (indent >= 0 ? indent + increment : increment) : 0
        blockBreaks(&blockIndent)
        while column == blockIndent && !isEnd() {
            skipLine()
            if isEnd() { return }
            skipBreak()
            blockBreaks(&blockIndent)
        }
    }

    private mutating func blockBreaks(_ blockIndent: inout Int) {
        var maxIndent = 0
        while true {
            while (blockIndent == 0 || column < blockIndent) && byte() == 0x20 { advance() }
            maxIndent = max(maxIndent, column)
            guard isBreak() else { break }
            skipBreak()
        }
        if blockIndent == 0 { blockIndent = max(maxIndent, indent + 1, 1) }
    }
}
