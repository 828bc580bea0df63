#if canImport(Glibc)
import Glibc
#endif

/// A TCP port on 127.0.0.1 nothing listens on: the first one at or after `from` (every `step`)
/// that binds, for the throwaway servers and the "unreachable" cases of the tests.
public func freeLocalPort(from: Int, step: Int = 1) -> Int {
    for p in stride(from: from, to: 65000, by: step) {
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(s) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = in_port_t(UInt16(p).bigEndian)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        let r = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if r == 0 { return p }
    }
    return from
}
