import Foundation
import MaasBackupCore
import Testing
import TestSupport
import Yams

/// The shipped alert rules (docs/maas-snapshot-backup.rules.yml) against the gauges the tool
/// writes: what `promtool check rules` would catch of a renamed metric, without Prometheus.
@Suite("alert rules")
struct AlertRulesTests {
    static let rules = RepoRoot.of(#filePath) + "/docs/maas-snapshot-backup.rules.yml"

    @Test("every rule has a name and an expression, and every metric it names is one the textfile has")
    func rulesUseRealMetrics() throws {
        let text = try String(contentsOfFile: Self.rules, encoding: .utf8)
        let doc = try #require(try Yams.load(yaml: text) as? [String: Any])
        let groups = try #require(doc["groups"] as? [[String: Any]])
        let rules = groups.flatMap { ($0["rules"] as? [[String: Any]]) ?? [] }
        #expect(rules.count >= 3)
        let written = Set(MetricsFile.help.map { MetricsFile.prefix + $0.0 }).union([MetricsFile.prefix + "build_info"])
        let rendered = MetricsFile.render([:])
        for r in rules {
            let name = r["alert"] as? String
            let expr = r["expr"] as? String ?? ""
            #expect(name?.isEmpty == false && !expr.isEmpty, "\(r)")
            let used = expr.matches(of: /maas_snapshot_backup_[a-z_]+/).map { String($0.output) }
            #expect(!used.isEmpty, "\(name ?? "?") names no metric of the tool")
            for m in used {
                #expect(written.contains(m), "\(name ?? "?") uses \(m), which the tool does not write")
                #expect(rendered.contains("\n\(m) ") || rendered.contains("\n\(m){"), "\(m) is not in the rendered textfile")
            }
        }
        // Base units only.
        #expect(!rendered.contains("milliseconds"))
    }
}
