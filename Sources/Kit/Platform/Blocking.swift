import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs blocking work (file IO, compression) on its own thread, off the cooperative pool.
package enum Blocking {
    final package class Box<T>: @unchecked Sendable {
        package let body: () throws -> T
        package init(_ b: @escaping () throws -> T) { body = b }
    }

    static package func run<T>(_ body: @escaping () throws -> T) async throws -> T {
        let box = Box(body)
        return try await withCheckedThrowingContinuation { (c: CheckedContinuation<UncheckedSendable<T>, any Error>) in
            let t = Thread {
                do { c.resume(returning: UncheckedSendable(try box.body())) } catch { c.resume(throwing: error) }
            }
            t.stackSize = 8 << 20
            t.start()
        }.value
    }
}

package struct UncheckedSendable<T>: @unchecked Sendable {
    package let value: T
    package init(_ v: T) { value = v }
}
