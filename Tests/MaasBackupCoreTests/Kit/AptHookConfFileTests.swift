import Foundation
import Testing
import TestSupport
@testable import MaasBackupCore

/// The shipped /etc/maas-snapshot-backup/config.yaml (etc/config.yaml, a conffile of the package)
/// against the configuration parser: as shipped it sets nothing; with every key uncommented it is
/// valid and every concrete value it shows is the built-in default; every key the parser knows is
/// in it.
@Suite("shipped config.yaml")
struct AptHookConfFileTests {
    static let repo = URL(fileURLWithPath: RepoRoot.of(#filePath))

    func shipped() throws -> String {
        try String(contentsOf: Self.repo.appendingPathComponent("etc/config.yaml"), encoding: .utf8)
    }

    /// Removes the "#" of commented-out settings ("#key: value", "#  key: value", "#  - item").
    static func uncomment(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            guard line.hasPrefix("#") else { return String(line) }
            let body = line.dropFirst()
            let trimmed = body.drop { $0 == " " }
            let indent = body.count - trimmed.count
            let isSetting = indent % 2 == 0 && (trimmed.hasPrefix("- ") ||
                (trimmed.first.map { $0.isLowercase } == true &&
                 trimmed.prefix { $0.isLowercase || $0 == "_" }.count < trimmed.count &&
                 trimmed.dropFirst(trimmed.prefix { $0.isLowercase || $0 == "_" }.count).first == ":"))
            return isSetting ? String(body) : String(line)
        }.joined(separator: "\n")
    }

    @Test func shippedFileSetsNothing() throws {
        #expect(try Config.parse(yaml: shipped(), source: "etc/config.yaml") == Config())
    }

    @Test func everyKeyUncommentedIsValidAndTheDefault() throws {
        let text = Self.uncomment(try shipped())
        #expect(text != (try shipped()))
        let c = try Config.parse(yaml: text, source: "etc/config.yaml uncommented")
        var expected = Config()
        // Database connection values are examples (their defaults come from regiond.conf).
        expected.database = c.database
        #expect(c == expected)
        #expect(c.database.scope == Config().database.scope)
        #expect(c.copyInWindowMax == 64 << 20)
        #expect(c.metricsTextfile == nil)

        // Every key the parser knows appears as a setting.
        for key in Config.topKeys {
            #expect(text.contains("\n\(key):"), "top-level key \(key) missing from etc/config.yaml")
        }
        for key in Config.databaseKeys {
            #expect(text.contains("\n  \(key):"), "database key \(key) missing from etc/config.yaml")
        }
        for key in ["snapshot_size", "keep", "keep_pre_upgrade", "max_age_days", "on_failure", "max_backup_age_hours"] {
            #expect(text.contains("\n  \(key):"), "key \(key) missing from etc/config.yaml")
        }
    }

    @Test func uncommentKeepsProse() {
        let text = "# The root of the host: a folder.\n#root: /\n#  - /etc/maas\n#  # scope: a comment\n# gzip level"
        #expect(Self.uncomment(text) == "# The root of the host: a folder.\nroot: /\n  - /etc/maas\n#  # scope: a comment\n# gzip level")
    }
}
