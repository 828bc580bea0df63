import MSBKit
import MSBPackages
/// What apt sends a `DPkg::Pre-Install-Pkgs` hook with protocol Version 3 (apt.conf(5); apt-pkg/deb/dpkgpm.cc,
/// `pkgDPkgPM::SendPkgsInfo`), on the file descriptor named by `APT_HOOK_INFO_FD`:
///
///     VERSION 3
///     APT::Architecture=amd64            one line per configuration item, Key=Value, %XX-quoted
///     ...
///                                        a blank line
///     maas-common 1:3.4.0-1 amd64 none < 1:3.5.0-1 amd64 none /var/cache/apt/archives/maas-common_....deb
///     maas-common 1:3.4.0-1 amd64 none < 1:3.5.0-1 amd64 none **CONFIGURE**
///     maas-rack-controller 1:3.4.0-1 amd64 none > - - none **REMOVE**
///     newpkg - - none < 1.0 all foreign /var/cache/apt/archives/newpkg_1.0_all.deb
///
/// Package lines: name, current version, its architecture and multi-arch type (`- - none` when not
/// installed), the comparison of the new version to the current one (`<` newer, `>` older or
/// removal, `=` same), new version, its architecture and multi-arch type (`- - none` for a
/// removal), then a .deb path, `**CONFIGURE**`, `**REMOVE**` or `**ERROR**`.
public struct AptHookInput: Sendable, Equatable {
    /// The only protocol version this parser reads.
    public static let supportedVersion = 3
    /// Longest accepted line, in bytes (without its newline).
    public static let maxLineLength = 64 * 1024
    /// Largest accepted input, in bytes.
    public static let maxInputSize = 64 * 1024 * 1024

    public struct ConfigItem: Sendable, Equatable {
        public var key: String
        public var value: String
        public init(key: String, value: String) {
            self.key = key
            self.value = value
        }
    }

    public enum Comparison: String, Sendable, Equatable, CaseIterable {
        /// The new version is newer than the current one (or nothing is installed).
        case newer = "<"
        /// The new version is older, or the package is removed.
        case older = ">"
        case same = "="
    }

    public enum Operation: Sendable, Equatable {
        case install(debPath: String)
        case configure
        case remove
        /// apt had no absolute file name for an install (it prints `**ERROR**`).
        case error
    }

    public struct PackageAction: Sendable, Equatable {
        public var name: String
        public var currentVersion: String?
        public var currentArchitecture: String?
        public var currentMultiArch: String
        public var comparison: Comparison
        public var newVersion: String?
        public var newArchitecture: String?
        public var newMultiArch: String
        public var operation: Operation

        public init(name: String, currentVersion: String?, currentArchitecture: String?, currentMultiArch: String = "none",
                    comparison: Comparison, newVersion: String?, newArchitecture: String?, newMultiArch: String = "none",
                    operation: Operation) {
            self.name = name
            self.currentVersion = currentVersion
            self.currentArchitecture = currentArchitecture
            self.currentMultiArch = currentMultiArch
            self.comparison = comparison
            self.newVersion = newVersion
            self.newArchitecture = newArchitecture
            self.newMultiArch = newMultiArch
            self.operation = operation
        }

        /// The .deb path of an install line.
        public var debPath: String? {
            if case .install(let path) = operation { return path }
            return nil
        }

        /// The change this line describes.
        public var change: PackageChange {
            let arch = newArchitecture ?? currentArchitecture
            if operation == .remove || newVersion == nil {
                return PackageChange(name: name, architecture: arch, oldVersion: currentVersion, newVersion: nil, kind: .remove)
            }
            guard let current = currentVersion else {
                return PackageChange(name: name, architecture: arch, oldVersion: nil, newVersion: newVersion, kind: .install,
                                     archivePath: debPath)
            }
            let kind: PackageChangeKind
            switch comparison {
            case .newer: kind = .upgrade
            case .older: kind = .downgrade
            case .same: kind = operation == .configure ? .configure : .reinstall
            }
            return PackageChange(name: name, architecture: arch, oldVersion: current, newVersion: newVersion, kind: kind,
                                 archivePath: debPath)
        }
    }

    public var version: Int
    /// Configuration items in the order apt sent them.
    public var configuration: [ConfigItem]
    public var actions: [PackageAction]

    public init(version: Int = AptHookInput.supportedVersion, configuration: [ConfigItem], actions: [PackageAction]) {
        self.version = version
        self.configuration = configuration
        self.actions = actions
    }

    /// The last value of a configuration key (apt's keys are case-insensitive).
    public func config(_ key: String) -> String? {
        let wanted = key.lowercased()
        return configuration.last { $0.key.lowercased() == wanted }?.value
    }

    /// All values of a list (`DPkg::Pre-Install-Pkgs::` items).
    public func configList(_ key: String) -> [String] {
        let wanted = key.lowercased()
        let prefix = wanted.hasSuffix("::") ? wanted : wanted + "::"
        return configuration.filter { $0.key.lowercased() == prefix }.map(\.value)
    }

    /// `APT::Architecture`, the native architecture.
    public var architecture: String? { config("APT::Architecture") }

    /// The backup decision for this transaction.
    public var decision: HookDecision { HookDecision.decide(actions.map(\.change)) }
}

extension AptHookInput {
    /// The input's lines (every line apt writes ends with "\n"), whether text follows the last
    /// newline, and the number of the line after the last complete one.
    static func splitLines(_ data: [UInt8]) throws(AptHookInputError) -> (lines: [ArraySlice<UInt8>], unterminated: Bool, lineNo: Int) {
        var lines: [ArraySlice<UInt8>] = []
        var start = 0
        var lineNo = 1
        for i in data.indices {
            let b = data[i]
            if b == 0 { throw .nulByte(line: lineNo) }
            if b == UInt8(ascii: "\n") {
                if i - start > maxLineLength { throw .lineTooLong(line: lineNo) }
                lines.append(data[start..<i])
                start = i + 1
                lineNo += 1
            } else if i - start >= maxLineLength {
                throw .lineTooLong(line: lineNo)
            }
        }
        return (lines, start < data.count, lineNo)
    }

    /// Parses the whole input. Never traps: anything malformed throws `AptHookInputError`.
    public static func parse(bytes: some Collection<UInt8>) throws(AptHookInputError) -> AptHookInput {
        let data = Array(bytes)
        if data.isEmpty { throw .empty }
        if data.count > maxInputSize { throw .tooLarge }

        let (lines, unterminated, lineNo) = try splitLines(data)

        func text(_ slice: ArraySlice<UInt8>, _ line: Int) throws(AptHookInputError) -> String {
            guard let s = String(validating: slice, as: UTF8.self) else { throw .invalidUTF8(line: line) }
            return s
        }

        // Header.
        guard let first = lines.first else {
            if !data.starts(with: Array("VERSION ".utf8)) {
                throw .badHeader(String(decoding: data.prefix(64), as: UTF8.self))
            }
            throw .truncated("no complete first line")
        }
        let header = try text(first, 1)
        guard header.hasPrefix("VERSION ") else { throw .badHeader(header) }
        let versionText = String(header.dropFirst("VERSION ".count))
        guard let version = Int(versionText), version == supportedVersion else {
            throw .unsupportedVersion(versionText)
        }

        // Configuration until the blank line.
        var configuration: [ConfigItem] = []
        var index = 1
        var sawBlank = false
        while index < lines.count {
            let lineNumber = index + 1
            let raw = lines[index]
            index += 1
            if raw.isEmpty {
                sawBlank = true
                break
            }
            let line = try text(raw, lineNumber)
            guard let eq = line.firstIndex(of: "=") else {
                throw .malformedConfig(line: lineNumber, "no '=' in \(AptHookInputError.show(line))")
            }
            let key = String(line[..<eq])
            if key.isEmpty { throw .malformedConfig(line: lineNumber, "empty key") }
            guard let k = dequote(key), let v = dequote(String(line[line.index(after: eq)...])) else {
                throw .malformedConfig(line: lineNumber, "bad %-escape in \(AptHookInputError.show(line))")
            }
            configuration.append(ConfigItem(key: k, value: v))
        }
        if !sawBlank {
            throw .truncated("the configuration section has no closing blank line")
        }

        // Package actions.
        var actions: [PackageAction] = []
        while index < lines.count {
            let lineNumber = index + 1
            let line = try text(lines[index], lineNumber)
            index += 1
            actions.append(try parseAction(line, lineNumber: lineNumber))
        }
        if unterminated {
            throw .truncated("the last line (line \(lineNo)) has no newline")
        }
        return AptHookInput(version: version, configuration: configuration, actions: actions)
    }

    /// Undoes apt's `QuoteString` (`%XX` for quoted bytes). Nil on a bad escape or a NUL byte;
    /// bytes that are not UTF-8 become U+FFFD (an apt option of any encoding is not our business).
    static package func dequote(_ s: String) -> String? {
        guard s.utf8.contains(UInt8(ascii: "%")) else { return s }
        var out: [UInt8] = []
        var it = Array(s.utf8)[...]
        while let b = it.popFirst() {
            if b != UInt8(ascii: "%") {
                out.append(b)
                continue
            }
            guard let h = it.popFirst(), let l = it.popFirst(), let hv = hexValue(h), let lv = hexValue(l) else { return nil }
            out.append(hv << 4 | lv)
        }
        if out.contains(0) { return nil }
        return String(decoding: out, as: UTF8.self)
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    private static func isToken(_ s: Substring) -> Bool {
        !s.isEmpty && s.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value < 0x7F }
    }

    private static func isPackageName(_ s: Substring) -> Bool {
        // Debian policy: lower-case letters, digits, + - . ; apt's own names may carry upper case.
        !s.isEmpty && s.unicodeScalars.allSatisfy {
            ($0 >= "a" && $0 <= "z") || ($0 >= "A" && $0 <= "Z") || ($0 >= "0" && $0 <= "9") || $0 == "+" || $0 == "-" || $0 == "." || $0 == "_"
        }
    }

    private static func parseAction(_ line: String, lineNumber: Int) throws(AptHookInputError) -> PackageAction {
        func bad(_ why: String) -> AptHookInputError { .malformedPackage(line: lineNumber, why) }
        // Eight space-separated fields, then the action (a path may contain spaces).
        var fields: [Substring] = []
        var rest = Substring(line)
        for _ in 0..<8 {
            guard let sp = rest.firstIndex(of: " ") else {
                throw bad("expected 9 fields, found \(fields.count + (rest.isEmpty ? 0 : 1))")
            }
            fields.append(rest[..<sp])
            rest = rest[rest.index(after: sp)...]
        }
        let action = rest
        let name = fields[0]
        guard isPackageName(name) else { throw bad("package name \(AptHookInputError.show(String(name)))") }

        func versionTriple(_ v: Substring, _ a: Substring, _ m: Substring, _ what: String) throws(AptHookInputError) -> (String?, String?, String) {
            guard isToken(v), isToken(a), isToken(m) else { throw bad("empty or unprintable \(what) version fields") }
            if v == "-" {
                guard a == "-" else { throw bad("\(what) architecture \(AptHookInputError.show(String(a))) without a version") }
                return (nil, nil, String(m))
            }
            guard a != "-" else { throw bad("\(what) version without an architecture") }
            return (String(v), String(a), String(m))
        }
        let (curV, curA, curM) = try versionTriple(fields[1], fields[2], fields[3], "current")
        guard let comparison = Comparison(rawValue: String(fields[4])) else {
            throw bad("comparison \(AptHookInputError.show(String(fields[4]))) is not <, > or =")
        }
        let (newV, newA, newM) = try versionTriple(fields[5], fields[6], fields[7], "new")

        let operation: Operation
        switch action {
        case "**CONFIGURE**": operation = .configure
        case "**REMOVE**": operation = .remove
        case "**ERROR**": operation = .error
        default:
            guard action.hasPrefix("/"), action.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F }) else {
                throw bad("action \(AptHookInputError.show(String(action))) is not a .deb path, **CONFIGURE** or **REMOVE**")
            }
            operation = .install(debPath: String(action))
        }
        switch operation {
        case .remove:
            guard newV == nil else { throw bad("**REMOVE** with a new version") }
        case .install, .configure, .error:
            guard newV != nil else { throw bad("no new version for an install or configure") }
        }
        return PackageAction(name: String(name), currentVersion: curV, currentArchitecture: curA, currentMultiArch: curM,
                             comparison: comparison, newVersion: newV, newArchitecture: newA, newMultiArch: newM,
                             operation: operation)
    }

    /// The line apt would write for this action (for tests and for logging).
    public static func format(_ a: PackageAction) -> String {
        let cur = a.currentVersion.map { "\($0) \(a.currentArchitecture ?? "-") \(a.currentMultiArch)" } ?? "- - \(a.currentMultiArch)"
        let new = a.newVersion.map { "\($0) \(a.newArchitecture ?? "-") \(a.newMultiArch)" } ?? "- - \(a.newMultiArch)"
        let op: String
        switch a.operation {
        case .install(let p): op = p
        case .configure: op = "**CONFIGURE**"
        case .remove: op = "**REMOVE**"
        case .error: op = "**ERROR**"
        }
        return "\(a.name) \(cur) \(a.comparison.rawValue) \(new) \(op)"
    }

    /// Serialises like apt does (`VERSION 3`, quoted config, blank line, actions).
    public func serialized() -> [UInt8] {
        var out = "VERSION \(version)\n"
        for item in configuration {
            out += Self.quote(item.key, bad: "=\"\n") + "=" + Self.quote(item.value, bad: "\n") + "\n"
        }
        out += "\n"
        for a in actions { out += Self.format(a) + "\n" }
        return Array(out.utf8)
    }

    /// apt's `QuoteString`: `%XX` for the bad characters, '%', controls, space and bytes >= 0x7F.
    static package func quote(_ s: String, bad: String) -> String {
        let badBytes = Set(bad.utf8)
        var out = ""
        for b in s.utf8 {
            if badBytes.contains(b) || b == UInt8(ascii: "%") || b <= 0x20 || b >= 0x7F {
                let hex = String(b, radix: 16)
                out += "%" + (hex.count == 1 ? "0" + hex : hex)
            } else {
                out.unicodeScalars.append(Unicode.Scalar(b))
            }
        }
        return out
    }
}
