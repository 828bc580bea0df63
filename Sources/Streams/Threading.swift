#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A pthread mutex with two condition variables on it. pthread objects must never be moved or
/// copied, and Swift promises no stable address for a stored property passed `inout`, so they
/// live in explicit heap allocations.
///
/// `@unchecked Sendable`: the type exists to be shared between threads; all its state is the
/// pthread objects, which are thread-safe by definition.
final class Monitor: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let conditions: UnsafeMutablePointer<pthread_cond_t>

    /// Index of the condition workers wait on ("there is work or we are stopping").
    static let work = 0
    /// Index of the condition the producer waits on ("a block is done").
    static let done = 1

    init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        precondition(pthread_mutex_init(mutex, nil) == 0, "pthread_mutex_init failed")
        conditions = .allocate(capacity: 2)
        conditions.initialize(repeating: pthread_cond_t(), count: 2)
        for i in 0..<2 {
            precondition(pthread_cond_init(conditions + i, nil) == 0, "pthread_cond_init failed")
        }
    }

    deinit {
        for i in 0..<2 { pthread_cond_destroy(conditions + i) }
        pthread_mutex_destroy(mutex)
        conditions.deinitialize(count: 2)
        conditions.deallocate()
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    func withLock<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Only while holding the lock (inside `withLock`).
    func wait(_ condition: Int) {
        pthread_cond_wait(conditions + condition, mutex)
    }

    func signal(_ condition: Int) {
        pthread_cond_signal(conditions + condition)
    }

    func broadcast(_ condition: Int) {
        pthread_cond_broadcast(conditions + condition)
    }
}

/// A joinable pthread running a closure.
struct JoinableThread {
    #if canImport(Darwin)
    private let handle: pthread_t?
    #else
    private let handle: pthread_t
    #endif

    private final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }

    /// Starts a thread with a 1 MiB stack (zlib's deflate needs little; the default 8 MiB of
    /// address space per thread is wasteful) running `body`.
    init(_ body: @escaping @Sendable () -> Void) throws {
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setstacksize(&attributes, 1 << 20)
        let context = Unmanaged.passRetained(Box(body)).toOpaque()
        #if canImport(Darwin)
        var thread: pthread_t? = nil
        #else
        var thread = pthread_t()
        #endif
        let rc = pthread_create(&thread, &attributes, { raw in
            #if canImport(Darwin)
            let box = Unmanaged<Box>.fromOpaque(raw).takeRetainedValue()
            #else
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            #endif
            box.body()
            return nil
        }, context)
        guard rc == 0 else {
            Unmanaged<Box>.fromOpaque(context).release()
            throw StreamError.system(operation: "pthread_create", errno: rc, path: nil)
        }
        handle = thread
    }

    func join() {
        #if canImport(Darwin)
        if let handle { pthread_join(handle, nil) }
        #else
        pthread_join(handle, nil)
        #endif
    }
}

/// The number of online CPUs (`sysconf(_SC_NPROCESSORS_ONLN)`), at least 1.
public func onlineProcessorCount() -> Int {
    max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
}
