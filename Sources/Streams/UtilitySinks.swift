/// Writes every byte to two sinks, `first` then `second` (e.g. the archive file and a digest).
///
/// `finish()` finishes both, even when the first throws; the first error is rethrown.
public final class TeeSink: ByteSink {
    public let first: any ByteSink
    public let second: any ByteSink

    public init(_ first: any ByteSink, _ second: any ByteSink) {
        self.first = first
        self.second = second
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        try first.write(bytes)
        try second.write(bytes)
    }

    public func finish() throws {
        var firstError: (any Error)?
        do { try first.finish() } catch { firstError = error }
        do { try second.finish() } catch { if firstError == nil { firstError = error } }
        if let firstError { throw firstError }
    }
}

/// A pass-through filter counting the bytes going through it, with an optional progress hook
/// called after each write with the running total. With no downstream it is a counting
/// "/dev/null".
public final class ByteCounter: ByteSink {
    public let downstream: (any ByteSink)?
    /// Bytes written so far.
    public private(set) var count: UInt64 = 0
    /// Whether `finish()` has been called.
    public private(set) var isFinished = false
    private let progress: ((UInt64) -> Void)?

    public init(_ downstream: (any ByteSink)? = nil, progress: ((UInt64) -> Void)? = nil) {
        self.downstream = downstream
        self.progress = progress
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard !isFinished else { throw StreamError.alreadyFinished }
        try downstream?.write(bytes)
        count += UInt64(bytes.count)
        progress?(count)
    }

    public func finish() throws {
        guard !isFinished else { throw StreamError.alreadyFinished }
        isFinished = true
        try downstream?.finish()
    }
}

/// A sink keeping everything written to it in memory (tests, small manifests).
public final class MemorySink: ByteSink {
    public private(set) var bytes: [UInt8] = []
    public private(set) var isFinished = false

    public init() {}

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard !isFinished else { throw StreamError.alreadyFinished }
        self.bytes.append(contentsOf: bytes)
    }

    public func finish() throws {
        guard !isFinished else { throw StreamError.alreadyFinished }
        isFinished = true
    }
}
