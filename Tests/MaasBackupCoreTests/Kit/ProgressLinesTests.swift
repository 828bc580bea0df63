import Foundation
import Testing
import MaasBackupCore

/// Progress lines where stderr is not a terminal (issue 26): every 30 s or every tenth, with the
/// rate and the time left.
@Suite("progress lines")
struct ProgressLinesTests {
    final class Clock: @unchecked Sendable {
        var t = 1000.0
        var lines: [String] = []
    }

    func reporter(_ c: Clock) -> ProgressLines {
        ProgressLines(interval: 30, now: { c.t }, emit: { c.lines.append($0) })
    }

    @Test("a line for each tenth done, none in between, the first call only starts the clock")
    func tenths() {
        let c = Clock()
        let p = reporter(c)
        let total: Int64 = 1000 * 1_048_576
        p.update(0, total)
        #expect(c.lines.isEmpty)
        c.t += 1; p.update(50 * 1_048_576, total)
        #expect(c.lines.isEmpty, "5% is not a tenth")
        c.t += 1; p.update(100 * 1_048_576, total)
        #expect(c.lines == ["archiving: 100.0 MiB of about 1000.0 MiB (10%), 50.0 MiB/s, about 18 s left"])
        c.t += 1; p.update(150 * 1_048_576, total)
        #expect(c.lines.count == 1)
        c.t += 1; p.update(350 * 1_048_576, total)
        #expect(c.lines.count == 2, "two tenths at once give one line")
        #expect(c.lines.last?.hasPrefix("archiving: 350.0 MiB of about 1000.0 MiB (35%)") == true)
    }

    @Test("a line every 30 s when the tenths come slowly; an estimate passed is not over 100%")
    func interval() {
        let c = Clock()
        let p = reporter(c)
        let total: Int64 = 10 * 1_073_741_824
        p.update(0, total)
        c.t += 29; p.update(1_048_576, total)
        #expect(c.lines.isEmpty)
        c.t += 1; p.update(2 * 1_048_576, total)
        #expect(c.lines.count == 1)
        #expect(c.lines[0].contains("(0%)") && c.lines[0].contains("h") && c.lines[0].hasSuffix(" left"), "\(c.lines)")
        c.t += 30; p.update(total + 5, total)
        #expect(c.lines.last?.contains("(100%)") == true)
        #expect(c.lines.last?.contains("left") == false, "nothing left once the estimate is passed")
    }

    @Test("durations for people")
    func durations() {
        #expect(ProgressLines.duration(42) == "42 s")
        #expect(ProgressLines.duration(150) == "2 min 30 s")
        #expect(ProgressLines.duration(7300) == "2 h 1 min")
    }
}
