import Foundation
import Testing
import MaasBackupCore

/// SafeYAML's scan finds anchors and aliases where libyaml's scanner makes tokens of them, and
/// nowhere else (the answers below are libyaml's, taken from its event stream before the scan
/// replaced it; 8328 generated documents agreed).
@Suite struct SafeYAMLTests {
    static func found(_ yaml: String) -> String? {
        do { try SafeYAML.refuseAliases(yaml, source: "t.yaml"); return nil } catch let e as BackupError {
            #expect(e.code == .config)
            return e.message
        } catch { return "\(error)" }
    }

    @Test("anchors and aliases are refused with their line", arguments: [
        ("a: &x b", "t.yaml line 1: YAML anchors and aliases are not allowed, found an anchor (&name)"),
        ("a: b\nc:\n  - *x", "t.yaml line 3: YAML anchors and aliases are not allowed, found an alias (*name)"),
        ("k: [a, b\n , *c]", "t.yaml line 2: YAML anchors and aliases are not allowed, found an alias (*name)"),
        ("? &k\n: v", "t.yaml line 1: YAML anchors and aliases are not allowed, found an anchor (&name)"),
        ("k: !tag &a v", "t.yaml line 1: YAML anchors and aliases are not allowed, found an anchor (&name)"),
        ("- k: |\n    lit\n  o: *x", "t.yaml line 3: YAML anchors and aliases are not allowed, found an alias (*name)"),
        ("a:\n  b: |\n    x\n  c: &q 1", "t.yaml line 4: YAML anchors and aliases are not allowed, found an anchor (&name)"),
        ("x: 1\r\n...\r\n--- *a", "t.yaml line 3: YAML anchors and aliases are not allowed, found an alias (*name)"),
    ])
    func refused(yaml: String, message: String) {
        #expect(Self.found(yaml) == message)
    }

    @Test("a * or & inside a scalar or a comment is no anchor", arguments: [
        "k: a*b&c", "k: v *x", "k: a &b", "k: 'it''s *x'", "k: \"q \\\" &x\"", "k: v # &c", "k: |\n  *x\n  &y",
        "k: >-\n   text *x\n", "k: v\n  *x continued", "k:\n  text\n  *x", "a: 'multi\n  *line'", "password: \"*secret\"",
    ])
    func accepted(yaml: String) {
        #expect(Self.found(yaml) == nil)
    }
}
