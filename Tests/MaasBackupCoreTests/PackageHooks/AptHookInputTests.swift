import Testing
import MaasBackupCore
#if canImport(Glibc)
import Glibc
#endif

/// A hook input as apt 2.6 writes it (apt-pkg/deb/dpkgpm.cc, SendPkgsInfo, Version 3).
let aptHookSampleInput = """
VERSION 3
APT::Architecture=amd64
APT::Build-Essential::=build-essential
Dir=/
Dir::Etc::main=apt.conf
DPkg::Pre-Install-Pkgs::=/usr/sbin/dpkg-preconfigure%20--apt%20||%20true
DPkg::Pre-Install-Pkgs::=/etc/maas-snapshot-backup/hooks/apt-pre-install-pkgs
DPkg::Tools::Options::/etc/maas-snapshot-backup/hooks/apt-pre-install-pkgs=
DPkg::Tools::Options::/etc/maas-snapshot-backup/hooks/apt-pre-install-pkgs::Version=3
DPkg::Tools::Options::/etc/maas-snapshot-backup/hooks/apt-pre-install-pkgs::InfoFD=20
Odd%3dKey=50%25%20done

maas-common 1:3.4.0-14321-g.abc123-0ubuntu1~22.04.1 all foreign < 1:3.5.0-15000-g.def456-0ubuntu1~22.04.1 all foreign /var/cache/apt/archives/maas-common_1%3a3.5.0-15000-g.def456-0ubuntu1~22.04.1_all.deb
maas-region-controller 1:3.4.0-14321-g.abc123-0ubuntu1~22.04.1 amd64 none < 1:3.5.0-15000-g.def456-0ubuntu1~22.04.1 amd64 none /var/cache/apt/archives/maas-region-controller_1%3a3.5.0_amd64.deb
libfoo1 - - none < 2.0-1 amd64 same /var/cache/apt/archives/libfoo1_2.0-1_amd64.deb
maas-rack-controller 1:3.4.0-14321-g.abc123-0ubuntu1~22.04.1 amd64 none > - - none **REMOVE**
maas-common 1:3.4.0-14321-g.abc123-0ubuntu1~22.04.1 all foreign < 1:3.5.0-15000-g.def456-0ubuntu1~22.04.1 all foreign **CONFIGURE**
maas-region-controller 1:3.4.0-14321-g.abc123-0ubuntu1~22.04.1 amd64 none < 1:3.5.0-15000-g.def456-0ubuntu1~22.04.1 amd64 none **CONFIGURE**
libfoo1 - - none < 2.0-1 amd64 same **CONFIGURE**

"""

func aptHookInput(_ packageLines: [String], config: [String] = ["APT::Architecture=amd64"]) -> [UInt8] {
    Array(("VERSION 3\n" + config.map { $0 + "\n" }.joined() + "\n" + packageLines.map { $0 + "\n" }.joined()).utf8)
}

func aptHookParseError(_ bytes: [UInt8]) -> AptHookInputError? {
    do {
        _ = try AptHookInput.parse(bytes: bytes)
        return nil
    } catch {
        return error
    }
}

@Suite("apt hook input (Version 3)")
struct AptHookInputTests {
    @Test func parsesRealisticInput() throws {
        let input = try AptHookInput.parse(bytes: Array(aptHookSampleInput.utf8))
        #expect(input.version == 3)
        #expect(input.architecture == "amd64")
        #expect(input.configuration.count == 10)
        #expect(input.configList("DPkg::Pre-Install-Pkgs") == [
            "/usr/sbin/dpkg-preconfigure --apt || true", "/etc/maas-snapshot-backup/hooks/apt-pre-install-pkgs",
        ])
        #expect(input.config("dpkg::tools::options::/etc/maas-snapshot-backup/hooks/apt-pre-install-pkgs::version") == "3")
        #expect(input.config("Odd=Key") == "50% done")
        #expect(input.actions.count == 7)

        let first = input.actions[0]
        #expect(first.name == "maas-common")
        #expect(first.currentVersion == "1:3.4.0-14321-g.abc123-0ubuntu1~22.04.1")
        #expect(first.currentArchitecture == "all")
        #expect(first.currentMultiArch == "foreign")
        #expect(first.comparison == .newer)
        #expect(first.newVersion == "1:3.5.0-15000-g.def456-0ubuntu1~22.04.1")
        #expect(first.operation == .install(debPath: "/var/cache/apt/archives/maas-common_1%3a3.5.0-15000-g.def456-0ubuntu1~22.04.1_all.deb"))

        let fresh = input.actions[2]
        #expect(fresh.currentVersion == nil && fresh.currentArchitecture == nil)
        #expect(fresh.change.kind == .install)

        let removal = input.actions[3]
        #expect(removal.operation == .remove)
        #expect(removal.newVersion == nil && removal.newArchitecture == nil)
        #expect(removal.change.kind == .remove)
        #expect(input.actions[4].operation == .configure)
    }

    @Test func decisionForUpgradeAndRemoval() throws {
        let d = try AptHookInput.parse(bytes: Array(aptHookSampleInput.utf8)).decision
        #expect(d.backupNeeded)
        #expect(d.reason == "pre-upgrade maas-common 1:3.4.0-14321-g.abc123-0ubuntu1~22.04.1 -> 1:3.5.0-15000-g.def456-0ubuntu1~22.04.1, "
            + "maas-region-controller 1:3.4.0-14321-g.abc123-0ubuntu1~22.04.1 -> 1:3.5.0-15000-g.def456-0ubuntu1~22.04.1, "
            + "maas-rack-controller 1:3.4.0-14321-g.abc123-0ubuntu1~22.04.1 -> removed")
        // Install and configure lines of one package are merged; libfoo1 is not MAAS.
        #expect(d.packages.map(\.name) == ["maas-common", "maas-region-controller", "maas-rack-controller"])
        #expect(d.packages.map(\.kind) == [.upgrade, .upgrade, .remove])
        #expect(d.packages[1].archivePath == "/var/cache/apt/archives/maas-region-controller_1%3a3.5.0_amd64.deb")
        #expect(d.packages[2].archivePath == nil)
    }

    @Test func freshInstallOfMaasNeedsNoBackup() throws {
        let d = try AptHookInput.parse(bytes: aptHookInput([
            "maas-region-controller - - none < 1:3.5.0-1 amd64 none /var/cache/apt/archives/maas-region-controller_1%3a3.5.0-1_amd64.deb",
            "maas-region-controller - - none < 1:3.5.0-1 amd64 none **CONFIGURE**",
        ])).decision
        #expect(!d.backupNeeded)
        #expect(d.reason == nil)
        #expect(d.packages.map(\.kind) == [.install])
        #expect(d.explanation.contains("maas-region-controller (install)"))
    }

    @Test func downgradeNeedsBackup() throws {
        let d = try AptHookInput.parse(bytes: aptHookInput([
            "maas-region-controller 1:3.5.0-1 amd64 none > 1:3.4.0-1 amd64 none /tmp/maas-region-controller_3.4.0.deb",
        ])).decision
        #expect(d.backupNeeded)
        #expect(d.reason == "pre-upgrade maas-region-controller 1:3.5.0-1 -> 1:3.4.0-1")
        #expect(d.packages.first?.kind == .downgrade)
    }

    @Test func reinstallAndNonMaasNeedNoBackup() throws {
        let d = try AptHookInput.parse(bytes: aptHookInput([
            "maas-region-controller 1:3.5.0-1 amd64 none = 1:3.5.0-1 amd64 none /var/cache/apt/archives/m.deb",
            "postgresql-15 15.1-1 amd64 none < 15.2-1 amd64 none /var/cache/apt/archives/p.deb",
            "maas-snapshot-backup 0.1.0 amd64 none < 0.2.0 amd64 none /var/cache/apt/archives/msb.deb",
            "vim 2:9.0-1 amd64 none > - - none **REMOVE**",
        ])).decision
        #expect(!d.backupNeeded)
        #expect(d.packages.map(\.kind) == [.reinstall])
    }

    @Test func temporalAndPythonPackagesCount() throws {
        let d = try AptHookInput.parse(bytes: aptHookInput([
            "temporal 1.22.0-1 amd64 none < 1.23.0-1 amd64 none /var/cache/apt/archives/t.deb",
            "python3-django-maas 1:3.4.0-1 all foreign > - - none **REMOVE**",
        ])).decision
        #expect(d.backupNeeded)
        #expect(d.reason == "pre-upgrade temporal 1.22.0-1 -> 1.23.0-1, python3-django-maas 1:3.4.0-1 -> removed")
    }

    @Test func emptyTransactionIsValid() throws {
        let input = try AptHookInput.parse(bytes: aptHookInput([]))
        #expect(input.actions.isEmpty)
        #expect(!input.decision.backupNeeded)
        #expect(input.decision.explanation == "no MAAS package in this transaction")
    }

    @Test func serializedRoundTrips() throws {
        let input = try AptHookInput.parse(bytes: Array(aptHookSampleInput.utf8))
        #expect(try AptHookInput.parse(bytes: input.serialized()) == input)
        #expect(input.serialized() == Array(aptHookSampleInput.utf8))
    }

    @Test func malformedInputsGiveTypedErrors() {
        let long = String(repeating: "x", count: AptHookInput.maxLineLength + 1)
        let cases: [([UInt8], AptHookInputError)] = [
            ([], .empty),
            (Array("VERSION 2\nA=b\n\n".utf8), .unsupportedVersion("2")),
            (Array("VERSION 33\n\n".utf8), .unsupportedVersion("33")),
            (Array("/var/cache/apt/archives/x.deb\n".utf8), .badHeader("/var/cache/apt/archives/x.deb")),
            (Array("garbage".utf8), .badHeader("garbage")),
            (Array("VERSION 3".utf8), .truncated("no complete first line")),
            (Array("VERSION 3\nA=b\n".utf8), .truncated("the configuration section has no closing blank line")),
            (Array("VERSION 3\nA=b\n\nmaas 1 all none < 2 all none **CONFIGURE**".utf8), .truncated("the last line (line 4) has no newline")),
            (Array("VERSION 3\nA=b\u{0}\n\n".utf8), .nulByte(line: 2)),
            (Array("VERSION 3\nA=\(long)\n\n".utf8), .lineTooLong(line: 2)),
            (Array("VERSION 3\nNoEquals\n\n".utf8), .malformedConfig(line: 2, "no '=' in \"NoEquals\"")),
            (Array("VERSION 3\n=x\n\n".utf8), .malformedConfig(line: 2, "empty key")),
            (Array("VERSION 3\nA=%zz\n\n".utf8), .malformedConfig(line: 2, "bad %-escape in \"A=%zz\"")),
            ([UInt8]("VERSION 3\n\n".utf8) + [0xFF, 0xFE, 0x0A], .invalidUTF8(line: 3)),
            (aptHookInput(["maas 1 all none < 2 all **CONFIGURE**"]), .malformedPackage(line: 4, "expected 9 fields, found 8")),
            (aptHookInput(["maas 1 all none ? 2 all none **CONFIGURE**"]), .malformedPackage(line: 4, "comparison \"?\" is not <, > or =")),
            (aptHookInput(["maas 1 all none > 2 all none **REMOVE**"]), .malformedPackage(line: 4, "**REMOVE** with a new version")),
            (aptHookInput(["maas 1 all none < - - none /x.deb"]), .malformedPackage(line: 4, "no new version for an install or configure")),
            (aptHookInput(["maas - amd64 none < 2 all none /x.deb"]), .malformedPackage(line: 4, "current architecture \"amd64\" without a version")),
            (aptHookInput(["maas 1 all none < 2 all none relative.deb"]), .malformedPackage(line: 4, "action \"relative.deb\" is not a .deb path, **CONFIGURE** or **REMOVE**")),
            (aptHookInput(["ma$as 1 all none < 2 all none /x.deb"]), .malformedPackage(line: 4, "package name \"ma$as\"")),
        ]
        for (bytes, expected) in cases {
            let error = aptHookParseError(bytes)
            #expect(error == expected, "input \(String(decoding: bytes.prefix(60), as: UTF8.self))")
            if let error {
                #expect(!error.description.contains("\n"))
                #expect(error.backupError.code == .dataError)
            }
        }
    }

    @Test func pathsWithSpacesAndErrorMarker() throws {
        let input = try AptHookInput.parse(bytes: aptHookInput([
            "maas-cli 1.0 all none < 2.0 all none /home/u/my debs/maas-cli_2.0_all.deb",
            "maas-cli 1.0 all none < 2.0 all none **ERROR**",
        ]))
        #expect(input.actions[0].operation == .install(debPath: "/home/u/my debs/maas-cli_2.0_all.deb"))
        #expect(input.actions[1].operation == .error)
    }

    @Test func maasPackageNames() {
        for name in ["maas", "maas-region-controller", "maas-rack-controller", "maas-common", "maas-cli", "maas-dhcp",
                     "maas-region-api", "python3-django-maas", "python3-maas-provisioningserver", "python3-maas-client",
                     "temporal", "maas-common:amd64"] {
            #expect(MaasPackages.isMaasPackage(name), "\(name)")
        }
        for name in ["maas-snapshot-backup", "maas-", "maasive", "python3-maas", "python3-maas-", "python3-django",
                     "libmaas", "temporal-ui", "postgresql-15", "", "smaas"] {
            #expect(!MaasPackages.isMaasPackage(name), "\(name)")
        }
    }
}

@Suite("APT_HOOK_INFO_FD")
struct AptHookInfoFDTests {
    @Test func missingOrBadVariable() {
        #expect(throws: AptHookInputError.infoFDMissing) { try AptHookInput.infoFD(environment: [:]) }
        for bad in ["", "abc", "-1", "3x", "99999999999", "70000"] {
            #expect(throws: AptHookInputError.self) { try AptHookInput.infoFD(environment: ["APT_HOOK_INFO_FD": bad]) }
        }
        #expect((try? AptHookInput.infoFD(environment: ["APT_HOOK_INFO_FD": "20"])) == 20)
    }

    @Test func closedDescriptor() throws {
        // The highest number accepted, never handed out here (a number just closed could be
        // reused at once by another test's pipe or socket, running in parallel).
        let fd: Int32 = 65535
        #expect(fcntl(fd, F_GETFD) == -1, "descriptor \(fd) is open in the test process")
        let error = #expect(throws: AptHookInputError.self) {
            try AptHookInput.read(environment: ["APT_HOOK_INFO_FD": "\(fd)"])
        }
        #expect(error?.description == "APT_HOOK_INFO_FD is \(fd), which is not an open file descriptor")
    }

    @Test func readsFromAPipeLikeApt() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]) }
        // Write from another thread: the input is bigger than a pipe buffer.
        let bytes = Array(aptHookSampleInput.utf8) + Array(repeating: Array("libx 1 amd64 none < 2 amd64 none **CONFIGURE**\n".utf8), count: 5000).flatMap { $0 }
        let writer = fds[1]
        let thread = Thread { bytes.withUnsafeBytes { p in
            var off = 0
            while off < p.count {
                let n = write(writer, p.baseAddress! + off, p.count - off)
                if n <= 0 { break }
                off += n
            }
            close(writer)
        } }
        thread.start()
        let input = try AptHookInput.read(environment: ["APT_HOOK_INFO_FD": "\(fds[0])"])
        #expect(input.actions.count == 7 + 5000)
        #expect(input.decision.backupNeeded)
    }
}

import Foundation
