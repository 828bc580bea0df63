import MSBKit

/// Malformed apt hook input: one line saying what is wrong. Maps to exit code 65.
public enum AptHookInputError: Error, Sendable, Equatable, CustomStringConvertible {
    case empty
    case badHeader(String)
    case unsupportedVersion(String)
    case nulByte(line: Int)
    case lineTooLong(line: Int)
    case tooLarge
    case invalidUTF8(line: Int)
    case truncated(String)
    case malformedConfig(line: Int, String)
    case malformedPackage(line: Int, String)
    case infoFDMissing
    case infoFDInvalid(String)
    case readFailed(errno: Int32)

    public var description: String {
        let hint = "configure the hook with DPkg::Tools::Options::<hook>::Version \"3\""
        switch self {
        case .empty: return "apt hook input is empty (\(hint))"
        case .badHeader(let s): return "apt hook input does not start with VERSION 3 (first line \(Self.show(s)))"
        case .unsupportedVersion(let v): return "apt hook protocol version \(Self.show(v)) is not supported, only 3 (\(hint))"
        case .nulByte(let l): return "apt hook input line \(l): contains a NUL byte"
        case .lineTooLong(let l): return "apt hook input line \(l): longer than \(AptHookInput.maxLineLength) bytes"
        case .tooLarge: return "apt hook input is larger than \(AptHookInput.maxInputSize) bytes"
        case .invalidUTF8(let l): return "apt hook input line \(l): not valid UTF-8"
        case .truncated(let s): return "apt hook input is truncated: \(s)"
        case .malformedConfig(let l, let s): return "apt hook input line \(l): bad configuration line: \(s)"
        case .malformedPackage(let l, let s): return "apt hook input line \(l): bad package line: \(s)"
        case .infoFDMissing: return "APT_HOOK_INFO_FD is not set: apt-hook must be run by apt as a DPkg::Pre-Install-Pkgs hook"
        case .infoFDInvalid(let s): return "APT_HOOK_INFO_FD \(s)"
        case .readFailed(let e): return "reading the apt hook input failed (errno \(e))"
        }
    }

    /// As the tool's error (exit code 65, bad input data).
    public var backupError: BackupError { .data(description) }

    /// A short, printable excerpt of untrusted text for an error message.
    static package func show(_ s: String) -> String {
        var out = ""
        for scalar in s.unicodeScalars.prefix(40) {
            if scalar.value < 0x20 || scalar.value == 0x7F { out += "?" } else { out.unicodeScalars.append(scalar) }
        }
        if s.unicodeScalars.count > 40 { out += "..." }
        return "\"" + out + "\""
    }
}
