/// A stream of bytes going somewhere: a file, a compressor, a digest. Filters are sinks that
/// write to another sink (pgBackRest's "filters" on an IO stream).
public protocol ByteSink: AnyObject {
    /// Takes all of `bytes` or throws.
    func write(_ bytes: UnsafeRawBufferPointer) throws
    /// Flushes what is buffered and ends the stream (a filter finishes its downstream too).
    func finish() throws
}

extension ByteSink {
    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }
    public func write(_ string: String) throws {
        var s = string
        try s.withUTF8 { try write(UnsafeRawBufferPointer($0)) }
    }
}
