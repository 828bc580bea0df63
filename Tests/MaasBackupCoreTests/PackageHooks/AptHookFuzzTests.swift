import Testing
import TestSupport
import MaasBackupCore

/// Random but well-formed hook inputs, built as values and serialised the way apt does.
struct AptHookInputGenerator {
    var rng: SplitMix64

    static let names = ["maas", "maas-common", "maas-region-controller", "maas-rack-controller", "maas-cli", "maas-agent",
                        "python3-django-maas", "python3-maas-provisioningserver", "temporal", "maas-snapshot-backup",
                        "libc6", "postgresql-15", "python3-django", "bind9", "libfoo1", "nginx-core", "maasive"]
    static let versions = ["1:3.4.0-14321-g.abc-0ubuntu1~22.04.1", "1:3.5.0-15000-g.def-0ubuntu1~22.04.1", "1.0", "1.0~rc1",
                           "2.36-9+deb12u4", "15.6-0+deb12u1", "0", "1:0.1", "9.18.24-1", "1.0+b1", "3.4.0"]
    static let arches = ["amd64", "all", "arm64", "i386"]
    static let multiArch = ["none", "same", "foreign", "allowed"]
    static let configKeys = ["APT::Architecture", "Dir", "Dir::Cache::archives", "DPkg::Pre-Install-Pkgs::", "Odd=Key\"x",
                             "APT::Get::Assume-Yes", "Unattended-Upgrade::Allowed-Origins::"]
    static let configValues = ["amd64", "/", "var/cache/apt/archives/", "a b c", "50%", "true", "${distro_id}:${distro_codename}",
                               "héllo wörld", "", "x=y"]

    mutating func pick<T>(_ a: [T]) -> T { a[Int.random(in: 0..<a.count, using: &rng)] }

    mutating func action() -> AptHookInput.PackageAction {
        let name = pick(Self.names)
        let installed = Bool.random(using: &rng)
        let cur = installed ? pick(Self.versions) : nil
        let curArch = installed ? pick(Self.arches) : nil
        switch Int.random(in: 0..<3, using: &rng) {
        case 0:
            return .init(name: name, currentVersion: cur ?? pick(Self.versions), currentArchitecture: curArch ?? pick(Self.arches),
                         currentMultiArch: pick(Self.multiArch), comparison: .older, newVersion: nil, newArchitecture: nil,
                         newMultiArch: "none", operation: .remove)
        default:
            let new = pick(Self.versions)
            let cmp: AptHookInput.Comparison
            if let cur {
                let c = DebianVersion.compare(DebianVersion(new), DebianVersion(cur))
                cmp = c > 0 ? .newer : (c < 0 ? .older : .same)
            } else {
                cmp = .newer
            }
            let op: AptHookInput.Operation = Bool.random(using: &rng)
                ? .install(debPath: "/var/cache/apt/archives/\(name)_\(new.replacingOccurrences(of: ":", with: "%3a"))_all.deb")
                : .configure
            return .init(name: name, currentVersion: cur, currentArchitecture: curArch, currentMultiArch: pick(Self.multiArch),
                         comparison: cmp, newVersion: new, newArchitecture: pick(Self.arches), newMultiArch: pick(Self.multiArch),
                         operation: op)
        }
    }

    mutating func input() -> AptHookInput {
        let config = (0..<Int.random(in: 0..<8, using: &rng)).map { _ in
            AptHookInput.ConfigItem(key: pick(Self.configKeys), value: pick(Self.configValues))
        }
        let actions = (0..<Int.random(in: 0..<12, using: &rng)).map { _ in action() }
        return AptHookInput(configuration: config, actions: actions)
    }
}

/// Backup needed iff some MAAS package (not this tool) is upgraded, downgraded or removed: worked
/// out here independently of `HookDecision`.
func aptHookExpectedBackup(_ input: AptHookInput) -> Bool {
    let maas: Set<String> = ["maas", "maas-common", "maas-region-controller", "maas-rack-controller", "maas-cli", "maas-agent",
                             "python3-django-maas", "python3-maas-provisioningserver", "temporal"]
    return input.actions.contains { a in
        guard maas.contains(a.name) else { return false }
        if a.operation == .remove { return true }
        return a.currentVersion != nil && a.comparison != .same
    }
}

@Suite("apt hook input fuzzing")
struct AptHookFuzzTests {
    @Test func wellFormedInputsRoundTripAndDecideCorrectly() throws {
        var gen = AptHookInputGenerator(rng: SplitMix64(seed: 0x4D41_4153))
        var backups = 0
        for _ in 0..<3000 {
            let model = gen.input()
            let parsed = try AptHookInput.parse(bytes: model.serialized())
            #expect(parsed == model)
            let decision = parsed.decision
            #expect(decision.backupNeeded == aptHookExpectedBackup(model))
            #expect(decision.backupNeeded == (decision.reason != nil))
            if let reason = decision.reason {
                #expect(reason.hasPrefix("pre-upgrade "))
                backups += 1
            }
        }
        // The generator must exercise both outcomes.
        #expect(backups > 300 && backups < 2700)
    }

    @Test func mutatedInputsNeverCrash() {
        var gen = AptHookInputGenerator(rng: SplitMix64(seed: 20_260_520))
        var rng = SplitMix64(seed: 77)
        var accepted = 0, rejected = 0
        for _ in 0..<6000 {
            var bytes = gen.input().serialized()
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                mutate(&bytes, using: &rng)
            }
            do {
                let input = try AptHookInput.parse(bytes: bytes)
                _ = input.decision
                accepted += 1
            } catch {
                // Typed throws: `error` is an AptHookInputError; its message is one printable line.
                let text = error.description
                #expect(!text.isEmpty && !text.contains("\n") && !text.contains("\u{0}"))
                #expect(error.backupError.code == .dataError)
                rejected += 1
            }
        }
        #expect(accepted > 100 && rejected > 1000)
    }

    @Test func randomBytesNeverCrash() {
        var rng = SplitMix64(seed: 1)
        for i in 0..<3000 {
            let count = Int.random(in: 0..<512, using: &rng)
            var bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if i % 2 == 0 { bytes = Array("VERSION 3\n".utf8) + bytes }
            if i % 3 == 0 { bytes = bytes.map { $0 == 0 ? 0x0A : $0 } }
            do {
                _ = try AptHookInput.parse(bytes: bytes)
            } catch {
                #expect(!error.description.contains("\n"))
            }
        }
    }

    @Test func hugeLinesAreCapped() {
        let line = [UInt8](repeating: UInt8(ascii: "a"), count: 1024 * 1024)
        let bytes = Array("VERSION 3\n\nmaas ".utf8) + line + [0x0A]
        #expect(throws: AptHookInputError.lineTooLong(line: 3)) { try AptHookInput.parse(bytes: bytes) }
    }

    func mutate(_ bytes: inout [UInt8], using rng: inout SplitMix64) {
        let interesting: [UInt8] = [0x00, 0x0A, 0x20, 0x25, 0x3D, 0x2D, 0x3C, 0x3E, 0x2A, 0xFF, 0xC3, 0x2F]
        switch Int.random(in: 0..<8, using: &rng) {
        case 0 where !bytes.isEmpty: // flip a bit
            let i = Int.random(in: 0..<bytes.count, using: &rng)
            bytes[i] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &rng)
        case 1: // insert an interesting byte
            bytes.insert(interesting.randomElement(using: &rng)!, at: Int.random(in: 0...bytes.count, using: &rng))
        case 2 where !bytes.isEmpty: // delete a range
            let i = Int.random(in: 0..<bytes.count, using: &rng)
            bytes.removeSubrange(i..<min(bytes.count, i + Int.random(in: 1...20, using: &rng)))
        case 3: // truncate
            bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &rng)))
        case 4 where !bytes.isEmpty: // duplicate a range
            let i = Int.random(in: 0..<bytes.count, using: &rng)
            let chunk = bytes[i..<min(bytes.count, i + Int.random(in: 1...80, using: &rng))]
            bytes.insert(contentsOf: chunk, at: Int.random(in: 0...bytes.count, using: &rng))
        case 5: // change the version line
            let header = ["VERSION 2\n", "VERSION 3 \n", "version 3\n", "VERSION\n", "VERSION -3\n", "VERSION 3\r\n", ""]
            if let nl = bytes.firstIndex(of: 0x0A) { bytes.removeSubrange(0...nl) }
            bytes.insert(contentsOf: Array(header.randomElement(using: &rng)!.utf8), at: 0)
        case 6: // replace a field separator
            if let i = bytes.indices.filter({ bytes[$0] == 0x20 }).randomElement(using: &rng) {
                bytes[i] = interesting.randomElement(using: &rng)!
            }
        default: // swap two lines
            var lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false)
            if lines.count > 2 {
                let a = Int.random(in: 0..<lines.count, using: &rng), b = Int.random(in: 0..<lines.count, using: &rng)
                lines.swapAt(a, b)
                bytes = Array(lines.joined(separator: [0x0A]))
            }
        }
    }
}

import Foundation
