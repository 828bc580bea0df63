import Foundation
import TestSupport
import MaasBackupCore
import Testing

/// The config file is untrusted input: mutated and random files either parse or fail with one
/// printable line and exit code 78, never a crash.
@Suite("config file fuzzing")
struct ConfigFuzzTests {
    static let valid = """
        root: /srv/maas
        destination: /backups/
        paths: [/etc/maas, /var/lib/maas]
        exclude: [/var/lib/maas/boot-resources]
        services: [maas-regiond, maas-rackd]
        snapshot: btrfs
        database: {host: /run/postgresql, port: 5433, user: maas, name: maasdb, scope: all, os_user: postgres}
        copy_in_window_max: 1G
        compression_level: 9
        compression_threads: 2
        window_timeout: 60
        lvm: {snapshot_size: 10%VG}
        retention: {keep: 3, keep_pre_upgrade: 2, max_age_days: 30}
        hook: {on_failure: warn}
        metrics_textfile: /var/lib/node_exporter/maas.prom

        """

    /// Pieces that YAML and our parser treat specially.
    static let tokens: [String] = [
        ":", "- ", "[", "]", "{", "}", "&a ", "*a", "!!binary ", "!!int ", "---\n", "...\n", "'", "\"", "#", "\t", "\n  ",
        "?", "|\n", ">\n", "~", "null", "-1", "99999999999999999999", "0x10", "1e400", "G", "%ORIGIN", "..", "/", "\u{0}",
        "\u{FEFF}", "é", "<<: *a", "snapshot: ", "database:\n  port: ", "paths: ", "root: ", "retention: {keep: ",
    ]

    @Test func mutatedConfigsNeverCrash() {
        var rng = SplitMix64(seed: 0x636F_6E66)
        let base = Array(Self.valid.utf8)
        var accepted = 0, rejected = 0
        for _ in 0..<4000 {
            var bytes = base
            for _ in 0..<Int.random(in: 1...5, using: &rng) {
                let at = Int.random(in: 0...bytes.count, using: &rng)
                switch Int.random(in: 0..<4, using: &rng) {
                case 0 where !bytes.isEmpty:  // delete a run
                    let end = min(bytes.count, at + Int.random(in: 1...12, using: &rng))
                    if at < end { bytes.removeSubrange(at..<end) }
                case 1:  // insert a token
                    bytes.insert(contentsOf: Array(Self.tokens.randomElement(using: &rng)!.utf8), at: at)
                case 2 where at < bytes.count:  // flip a byte
                    bytes[at] ^= UInt8.random(in: 1...255, using: &rng)
                default:  // duplicate a line
                    let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
                    if let l = lines.randomElement(using: &rng) { bytes += Array(("\n" + l).utf8) }
                }
            }
            let text = String(decoding: bytes, as: UTF8.self)
            do {
                _ = try Config.parse(yaml: text)
                accepted += 1
            } catch let e as BackupError {
                #expect(e.code == .config, "\(e) for:\n\(text)")
                #expect(!e.description.isEmpty && !e.description.contains("\n"), "not one line: \(e.description)")
                rejected += 1
            } catch {
                Issue.record("not a BackupError: \(error) for:\n\(text)")
            }
        }
        // The mutations must exercise both outcomes.
        #expect(accepted > 100 && rejected > 1000, "accepted \(accepted), rejected \(rejected)")
    }

    @Test func randomBytesNeverCrash() {
        var rng = SplitMix64(seed: 3)
        for _ in 0..<2000 {
            let n = Int.random(in: 0...300, using: &rng)
            let bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            do {
                _ = try Config.parse(yaml: String(decoding: bytes, as: UTF8.self))
            } catch let e as BackupError {
                #expect(e.code == .config)
                #expect(!e.description.contains("\n"))
            } catch {
                Issue.record("not a BackupError: \(error)")
            }
        }
    }
}
