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
