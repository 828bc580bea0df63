import Foundation
import Testing
@testable import MaasBackupCore

/// `-q`, the default and `-v` against the priority each message is passed with (issue 26).
@Suite("log levels and verbosity")
struct LogLevelTests {
    @Test("-q shows errors only, the default everything but the steps, -v everything")
    func verbosity() {
        let shown = { (v: Verbosity) in LogLevel.allCases.filter { v.shows($0) } }
        #expect(shown(.quiet) == [.critical, .error])
        #expect(shown(.normal) == [.critical, .error, .warning, .notice, .info])
        #expect(shown(.verbose) == LogLevel.allCases)
        #expect(!Verbosity.quiet.showsProgress && Verbosity.normal.showsProgress && Verbosity.verbose.showsProgress)
        #expect(LogLevel.allCases.map(\.rawValue) == [2, 3, 4, 5, 6, 7], "syslog's numbers: the journal prefix is <N>")
    }

    @Test("the step timer tells of each step as it ends, with its time")
    func stepTimerReportsSteps() async {
        final class Box: @unchecked Sendable { var steps: [String] = [] }
        let box = Box()
        let timer = StepTimer { box.steps.append($0.step) }
        await timer.time("stop") {}
        await timer.time("snapshot /var/lib/maas") {}
        #expect(box.steps == ["stop", "snapshot /var/lib/maas"])
        #expect(timer.steps.map(\.step) == box.steps)
    }
}
