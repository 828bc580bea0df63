#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// Module-level names for the system calls, so the methods called `write` and `fsync` below do
// not shadow them.
private func systemWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int { write(fd, buffer, count) }
private func systemFsync(_ fd: Int32) -> Int32 { fsync(fd) }
private func systemClose(_ fd: Int32) -> Int32 { close(fd) }
private func systemOpen(_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32 { open(path, flags, mode) }

/// A sink writing to a file descriptor.
///
/// Every `write` is a full write: short writes are continued and `EINTR` is retried. Errors are
/// `StreamError.system` carrying the `errno`. The sink only closes descriptors it owns: those
/// it opened itself (`init(path:...)`) or was told to (`closeOnFinish: true`). `finish()`
/// closes an owned descriptor (after an `fsync` when `syncOnFinish` is set); `deinit` closes an
/// owned descriptor that `finish()` did not.
///
/// Not thread-safe: use one sink from one thread at a time.
public final class FileSink: ByteSink {
    /// The descriptor written to (-1 once an owned descriptor has been closed).
    public private(set) var fileDescriptor: Int32
    /// The path given to `init(path:...)`, used in error messages.
    public let path: String?
    /// Bytes written so far.
    public private(set) var bytesWritten: UInt64 = 0
    /// Whether `finish()` (or deinit) closes the descriptor.
    public let closesDescriptor: Bool
    /// Whether `finish()` calls `fsync()` first.
    public let syncOnFinish: Bool
    private var finished = false

    /// Writes to `fileDescriptor`, which stays open after `finish()` unless `closeOnFinish`.
    public init(fileDescriptor: Int32, closeOnFinish: Bool = false, syncOnFinish: Bool = false) {
        self.fileDescriptor = fileDescriptor
        self.path = nil
        self.closesDescriptor = closeOnFinish
        self.syncOnFinish = syncOnFinish
    }

    /// Creates (or with `exclusive: false`, truncates) the file at `path` with `permissions`
    /// (filtered by the umask), opened write-only and close-on-exec. The sink owns the
    /// descriptor. With `exclusive` (the default) an existing file is an error (`EEXIST`).
    public init(path: String, permissions: mode_t = 0o600, exclusive: Bool = true, syncOnFinish: Bool = false) throws {
        var flags = O_WRONLY | O_CREAT | O_CLOEXEC
        flags |= exclusive ? O_EXCL : O_TRUNC
        var fd: Int32
        repeat {
            fd = systemOpen(path, flags, permissions)
        } while fd < 0 && errno == EINTR
        if fd < 0 {
            throw StreamError.system(operation: "open", errno: errno, path: path)
        }
        self.fileDescriptor = fd
        self.path = path
        self.closesDescriptor = true
        self.syncOnFinish = syncOnFinish
    }

    deinit {
        if closesDescriptor && fileDescriptor >= 0 {
            _ = systemClose(fileDescriptor)
        }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard !finished else { throw StreamError.alreadyFinished }
        guard var next = bytes.baseAddress, bytes.count > 0 else { return }
        var remaining = bytes.count
        while remaining > 0 {
            let n = systemWrite(fileDescriptor, next, remaining)
            if n < 0 {
                if errno == EINTR { continue }
                throw StreamError.system(operation: "write", errno: errno, path: path)
            }
            if n == 0 {
                // write(2) does not return 0 for a non-empty buffer on files, pipes or sockets;
                // treat it as "no space" rather than loop for ever.
                throw StreamError.system(operation: "write", errno: ENOSPC, path: path)
            }
            bytesWritten += UInt64(n)
            remaining -= n
            next += n
        }
    }

    /// Flushes the file's data and metadata to the device (`fsync(2)`, retried on `EINTR`).
    public func fsync() throws {
        guard fileDescriptor >= 0 else { throw StreamError.alreadyFinished }
        while systemFsync(fileDescriptor) != 0 {
            if errno == EINTR { continue }
            throw StreamError.system(operation: "fsync", errno: errno, path: path)
        }
    }

    /// Ends the stream: `fsync` when `syncOnFinish`, then `close` when the sink owns the
    /// descriptor. A `close` error is reported (it can be the first sign of a failed write on
    /// NFS); the descriptor is not closed again either way. Calling `finish` twice throws
    /// `StreamError.alreadyFinished`.
    public func finish() throws {
        guard !finished else { throw StreamError.alreadyFinished }
        finished = true
        if syncOnFinish {
            do {
                try fsync()
            } catch {
                if closesDescriptor { closeOwned() }
                throw error
            }
        }
        if closesDescriptor {
            let fd = fileDescriptor
            fileDescriptor = -1
            // Linux closes the descriptor even when close(2) fails, EINTR included: never retry.
            if systemClose(fd) != 0 && errno != EINTR {
                throw StreamError.system(operation: "close", errno: errno, path: path)
            }
        }
    }

    private func closeOwned() {
        if fileDescriptor >= 0 {
            _ = systemClose(fileDescriptor)
            fileDescriptor = -1
        }
    }
}
