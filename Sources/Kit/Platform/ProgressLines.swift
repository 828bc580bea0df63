import Foundation

/// Progress as log lines, for output that is not a terminal (the journal under systemd, apt's
/// output, cron's mail): one line when a tenth more of the estimate is done or `interval` seconds
/// have passed since the last line, whichever comes first, with the bytes done, the rate and the
/// time left. Thread-safe: the archive's two producers (files, dump) report through one sum.
public final class ProgressLines: @unchecked Sendable {
    private let lock = NSLock()
    private let interval: Double
    private let what: String
    private let now: @Sendable () -> Double
    private let emit: @Sendable (String) -> Void
    private var start: Double?
    private var lastLine = 0.0
    private var lastTenth = 0

    /// `now` returns seconds (monotonic in tests, wall clock by default); `emit` gets each line.
    public init(what: String = "archiving", interval: Double = 30,
                now: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 },
                emit: @escaping @Sendable (String) -> Void) {
        self.what = what
        self.interval = interval
        self.now = now
        self.emit = emit
    }

    /// `done` bytes of about `total` (an estimate: `done` may pass it).
    public func update(_ done: Int64, _ total: Int64) {
        lock.lock()
        let t = now()
        guard let start else { self.start = t; lastLine = t; lock.unlock(); return }
        let tenth = total > 0 ? Int(min(done, total) * 10 / total) : 0
        guard t - lastLine >= interval || tenth > lastTenth else { lock.unlock(); return }
        lastLine = t
        lastTenth = max(lastTenth, tenth)
        let line = Self.line(what: what, done: done, total: total, elapsed: t - start)
        lock.unlock()
        emit(line)
    }

    /// "archiving: 1.2 GiB of about 4.0 GiB (30%), 85.0 MiB/s, about 34 s left".
    public static func line(what: String, done: Int64, total: Int64, elapsed: Double) -> String {
        var s = "\(what): \(Human.bytes(done))"
        if total > 0 { s += " of about \(Human.bytes(total)) (\(min(100, Int(done * 100 / total)))%)" }
        guard elapsed > 0, done > 0 else { return s }
        let rate = Double(done) / elapsed
        s += ", \(Human.bytes(Int64(rate)))/s"
        if total > done { s += ", about \(duration(Double(total - done) / rate)) left" }
        return s
    }

    /// 42 -> "42 s", 150 -> "2 min 30 s", 7300 -> "2 h 1 min".
    public static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s) s" }
        if s < 3600 { return "\(s / 60) min \(s % 60) s" }
        return "\(s / 3600) h \((s % 3600) / 60) min"
    }
}
