// swift-tools-version: 6.1
import PackageDescription

let swift6: [SwiftSetting] = [.swiftLanguageMode(.v6)]

// Every module a target imports is listed here: SwiftPM would compile an undeclared import of a
// module built earlier, so `scripts/check-imports.py` (run by `make test`) fails on one.
let package = Package(
    name: "maas-snapshot-backup",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "maas-snapshot-backup", targets: ["maas-snapshot-backup"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // C libraries, as Debian ships them.
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CBtrfsUtil", pkgConfig: "libbtrfsutil", providers: [.apt(["libbtrfsutil-dev"])]),
        .systemLibrary(name: "CLVM2Cmd", providers: [.apt(["liblvm2-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CArchive", pkgConfig: "libarchive", providers: [.apt(["libarchive-dev"])]),
        .systemLibrary(name: "CLinux"),
        .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),

        // Thin typed wrappers: one Swift function per C call, errors carry errno or the library's message.
        .target(name: "LibPQ", dependencies: ["CLibPQ"], path: "Sources/Wrappers/LibPQ", swiftSettings: swift6),
        .target(name: "LibBtrfsUtil", dependencies: ["CBtrfsUtil", .product(name: "SystemPackage", package: "swift-system")], path: "Sources/Wrappers/LibBtrfsUtil", swiftSettings: swift6),
        .target(name: "LibLVM2Cmd", dependencies: ["CLVM2Cmd"], path: "Sources/Wrappers/LibLVM2Cmd", swiftSettings: swift6),
        // Names as bytes (readable and reversible forms) and the kind of a tar member: shared by the
        // libarchive wrapper and the kit, below both.
        .target(name: "PathNames", path: "Sources/PathNames", swiftSettings: swift6),
        .target(name: "LibArchive", dependencies: ["CArchive", "PathNames"], path: "Sources/Wrappers/LibArchive", swiftSettings: swift6),
        .target(name: "Digest", dependencies: ["CCrypto"], path: "Sources/Wrappers/Digest", swiftSettings: swift6),
        // Byte streams and compression filters (gzip, parallel gzip).
        .target(name: "Streams", dependencies: ["CZlib", "Digest", .product(name: "SystemPackage", package: "swift-system")], path: "Sources/Streams", swiftSettings: swift6),

        // The kit: the model (config, manifest, archive names, errors, records) and the platform
        // (atomic files, private folders, the run lock, interruption, commands, file systems, fault points).
        .target(
            name: "MSBKit",
            dependencies: [
                "CLinux", "PathNames",
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Yams", package: "Yams"),
            ],
            path: "Sources/Kit", swiftSettings: swift6
        ),

        // Drivers: each outside thing behind a small protocol. They depend on the kit and their C
        // wrappers only, never on each other or on a command.
        .target(name: "MSBSnapshot", dependencies: ["MSBKit", "LibBtrfsUtil", "LibLVM2Cmd", "CLinux"],
                path: "Sources/Drivers/Snapshot", swiftSettings: swift6),
        .target(name: "MSBDatabase", dependencies: ["MSBKit", "LibPQ", "LibArchive", "CLinux",
                                                    .product(name: "Yams", package: "Yams"),
                                                    .product(name: "SystemPackage", package: "swift-system")],
                path: "Sources/Drivers/Database", swiftSettings: swift6),
        .target(name: "MSBServices", dependencies: ["MSBKit", "CLinux", .product(name: "SystemPackage", package: "swift-system")],
                path: "Sources/Drivers/Services", swiftSettings: swift6),
        .target(name: "MSBArchive", dependencies: ["MSBKit", "LibArchive", "PathNames", "Streams", "Digest", "CZlib"],
                path: "Sources/Drivers/Archive", swiftSettings: swift6),
        .target(name: "MSBPackages", dependencies: ["MSBKit", "Digest"],
                path: "Sources/Drivers/Packages", swiftSettings: swift6),
        // Off-host copies: restic repositories (a path, SFTP, REST, S3) and the gzip -> tar copier.
        .target(name: "MSBRemote", dependencies: ["MSBKit", "Streams", .product(name: "SystemPackage", package: "swift-system")],
                path: "Sources/Drivers/Remote", swiftSettings: swift6),
        // The region as found on this machine (Vault, other regions, services): database + services.
        .target(name: "MSBRegion", dependencies: ["MSBKit", "MSBDatabase", "MSBServices", "LibPQ",
                                                  .product(name: "Yams", package: "Yams")],
                path: "Sources/Region", swiftSettings: swift6),
        // Package-hook policy: apt's and dpkg's input, the decisions and the markers (the fuzzer links it).
        .target(name: "MSBPackageHooks", dependencies: ["MSBKit", "MSBPackages"],
                path: "Sources/PackageHooks", swiftSettings: swift6),

        // What the destination holds: each backup's files, the catalog, the reason of a backup and retention.
        .target(name: "MSBBackupSet", dependencies: ["MSBKit", "MSBArchive"],
                path: "Sources/BackupSet", swiftSettings: swift6),

        // Commands: one folder (and target) each; they use drivers, and only the ones listed call each other.
        .target(name: "MSBPrune", dependencies: ["MSBKit", "MSBBackupSet", "MSBCopy"],
                path: "Sources/Commands/Prune", swiftSettings: swift6),
        .target(name: "MSBVerify", dependencies: ["MSBKit", "MSBArchive", "MSBDatabase", "MSBCopy"],
                path: "Sources/Commands/Verify", swiftSettings: swift6),
        // Off-host copies: copy, remote-init, list/verify/prune --remote, restore --from-remote.
        .target(name: "MSBCopy", dependencies: ["MSBKit", "MSBRemote", "MSBArchive", "MSBBackupSet",
                                                .product(name: "SystemPackage", package: "swift-system")],
                path: "Sources/Commands/Copy", swiftSettings: swift6),
        .target(name: "MSBBackup", dependencies: ["MSBKit", "MSBSnapshot", "MSBDatabase", "MSBServices", "MSBArchive",
                                                  "MSBPackages", "MSBRegion", "MSBBackupSet", "MSBPrune", "MSBCopy", "Streams", "LibArchive",
                                                  .product(name: "SystemPackage", package: "swift-system")],
                path: "Sources/Commands/Backup", swiftSettings: swift6),
        .target(name: "MSBRestore", dependencies: ["MSBKit", "MSBSnapshot", "MSBDatabase", "MSBServices", "MSBArchive",
                                                   "MSBPackages", "MSBRegion", "MSBCopy", "LibPQ", .product(name: "Yams", package: "Yams")],
                path: "Sources/Commands/Restore", swiftSettings: swift6),
        .target(name: "MSBRollback", dependencies: ["MSBKit", "MSBRestore", "MSBBackupSet", "MSBArchive", "MSBPackages"],
                path: "Sources/Commands/Rollback", swiftSettings: swift6),
        // `recover`: finishes what killed runs left (services, snapshots, partial archives, restore swaps).
        .target(name: "MSBRecover", dependencies: ["MSBKit", "MSBBackup", "MSBRestore", "MSBSnapshot", "MSBServices",
                                                   "MSBDatabase", "MSBBackupSet"],
                path: "Sources/Commands/Recover", swiftSettings: swift6),
        // `status`: the last runs, leftovers of killed runs (which `recover` finishes), the config, the hooks.
        .target(name: "MSBStatus", dependencies: ["MSBKit", "MSBBackup", "MSBRestore", "MSBSnapshot", "MSBServices",
                                                  "MSBDatabase", "MSBBackupSet", "MSBCopy", "MSBRemote"],
                path: "Sources/Commands/Status", swiftSettings: swift6),
        // The backup the package hooks take before a MAAS package changes.
        .target(name: "MSBPreUpgrade", dependencies: ["MSBKit", "MSBServices", "MSBPackages", "MSBRegion", "MSBPackageHooks", "MSBBackupSet", "MSBBackup"],
                path: "Sources/Commands/PreUpgrade", swiftSettings: swift6),
        // The commands and policy in one import for the command line, the benchmark and the tests.
        .target(name: "MaasBackupCore", dependencies: ["MSBKit", "MSBSnapshot", "MSBDatabase", "MSBServices", "MSBArchive",
                                                       "MSBPackages", "MSBRemote", "MSBRegion", "MSBPackageHooks", "MSBBackupSet",
                                                       "MSBBackup", "MSBRestore", "MSBRollback", "MSBVerify", "MSBPrune",
                                                       "MSBRecover", "MSBStatus", "MSBPreUpgrade", "MSBCopy"],
                swiftSettings: swift6),
        // The command line: parses and prints, nothing else.
        .executableTarget(
            name: "maas-snapshot-backup",
            dependencies: [
                "MaasBackupCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/CLI",
            swiftSettings: swift6
        ),
        // Benchmarks/backup: the archive step alone, timed beside tar -czf and tar | pigz.
        .executableTarget(
            name: "msb-bench-archive",
            dependencies: ["MaasBackupCore"],
            path: "Benchmarks/archive",
            swiftSettings: swift6
        ),

        // libFuzzer on the apt hook input parser (`make fuzz-apt-hook`); a replayer without the define.
        .executableTarget(name: "apt-hook-fuzz", dependencies: ["MSBPackageHooks"], path: "Tests/Fuzz/AptHook", swiftSettings: swift6),
        // What the test targets share: the seeded generator and the built tool's path.
        .target(name: "TestSupport", path: "Tests/Shared", swiftSettings: swift6),
        .testTarget(name: "StreamsTests", dependencies: ["Streams", "CZlib", "TestSupport"], swiftSettings: swift6),
        .testTarget(name: "MaasBackupCoreTests", dependencies: ["MaasBackupCore", "LibArchive", "PathNames", "Streams", "TestSupport", .product(name: "Yams", package: "Yams")], swiftSettings: swift6),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["MaasBackupCore", "LibPQ", "LibArchive", "TestSupport",
                           .product(name: "SystemPackage", package: "swift-system")],
            swiftSettings: swift6
        ),
    ]
)
