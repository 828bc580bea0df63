import MSBKit
import MSBPackages
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension AptHookInput {
    /// The environment variable apt sets to the number of the descriptor carrying the hook input.
    public static let infoFDVariable = "APT_HOOK_INFO_FD"

    /// The descriptor named by `APT_HOOK_INFO_FD` in `environment`.
    public static func infoFD(environment: [String: String]) throws(AptHookInputError) -> Int32 {
        guard let raw = environment[infoFDVariable] else { throw .infoFDMissing }
        let text = raw.trimmingBlanks()
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              let fd = Int32(text), fd >= 0, fd <= 65535
        else {
            throw .infoFDInvalid("is \(AptHookInputError.show(raw)), not a file descriptor number")
        }
        return fd
    }

    /// Reads everything from `fd` (up to `maxInputSize`) and closes nothing.
    public static func readAll(fd: Int32) throws(AptHookInputError) -> [UInt8] {
        if fcntl(fd, F_GETFD) == -1 {
            throw .infoFDInvalid("is \(fd), which is not an open file descriptor")
        }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { sysRead(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                let e = errno
                if e == EINTR { continue }
                if e == EAGAIN {
                    // A non-blocking descriptor: wait until it is readable.
                    var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                    _ = poll(&p, 1, -1)
                    continue
                }
                throw .readFailed(errno: e)
            }
            if n == 0 { break }
            if out.count + n > maxInputSize {
                // Drain the rest so apt does not get EPIPE, then refuse.
                while buffer.withUnsafeMutableBytes({ sysRead(fd, $0.baseAddress, $0.count) }) > 0 {}
                throw .tooLarge
            }
            out.append(contentsOf: buffer[0..<n])
        }
        return out
    }

    /// Reads and parses the hook input apt passes on `APT_HOOK_INFO_FD`.
    public static func read(environment: [String: String]) throws(AptHookInputError) -> AptHookInput {
        let fd = try infoFD(environment: environment)
        return try parse(bytes: readAll(fd: fd))
    }
}

/// read(2), named apart from `AptHookInput.read(environment:)`.
private func sysRead(_ fd: Int32, _ buf: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    read(fd, buf, count)
}

private extension String {
    package func trimmingBlanks() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}

extension AptHookInput {
    /// Whether the package lines (after the first blank line) name a MAAS package, looking only at
    /// each line's first field, as bytes: apt's options and the rest of each line may hold
    /// anything. Nil when there is no package section to read (no `VERSION 3` header, no blank
    /// line) or a line's first field is not a package name: then the whole input is parsed.
    public static func namesMaasPackage(bytes: [UInt8]) -> Bool? {
        guard bytes.starts(with: Array("VERSION \(supportedVersion)\n".utf8)) else { return nil }
        let newline = UInt8(ascii: "\n")
        var i = 0
        var blank: Int?
        while i + 1 < bytes.count {
            if bytes[i] == newline && bytes[i + 1] == newline {
                blank = i + 2
                break
            }
            i += 1
        }
        guard let start = blank else { return nil }
        for line in bytes[start...].split(separator: newline) {
            let name = line.prefix { $0 != UInt8(ascii: " ") }
            guard !name.isEmpty, name.count <= 255, name.allSatisfy(Self.isNameByte) else { return nil }
            if MaasPackages.isMaasPackage(String(decoding: name, as: UTF8.self)) { return true }
        }
        return false
    }

    private static func isNameByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: ":"):
            return true
        default:
            return false
        }
    }
}
