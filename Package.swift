// swift-tools-version: 6.1
import PackageDescription

let swift6: [SwiftSetting] = [.swiftLanguageMode(.v6)]

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
        .target(name: "LibBtrfsUtil", dependencies: ["CBtrfsUtil"], path: "Sources/Wrappers/LibBtrfsUtil", swiftSettings: swift6),
        .target(name: "LibLVM2Cmd", dependencies: ["CLVM2Cmd"], path: "Sources/Wrappers/LibLVM2Cmd", swiftSettings: swift6),
        .target(name: "LibArchive", dependencies: ["CArchive"], path: "Sources/Wrappers/LibArchive", swiftSettings: swift6),
        .target(name: "Digest", dependencies: ["CCrypto"], path: "Sources/Wrappers/Digest", swiftSettings: swift6),
        // Byte streams and compression filters (gzip, parallel gzip).
        .target(name: "Streams", dependencies: ["CZlib"], path: "Sources/Streams", swiftSettings: swift6),

        // The core: backup, restore, verify, expire and rollback pipelines, and the adapters.
        .target(
            name: "MaasBackupCore",
            dependencies: [
                "LibPQ", "LibBtrfsUtil", "LibLVM2Cmd", "LibArchive", "Digest", "Streams", "CLinux",
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swift6
        ),
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

        .testTarget(name: "StreamsTests", dependencies: ["Streams"], swiftSettings: swift6),
        .testTarget(name: "MaasBackupCoreTests", dependencies: ["MaasBackupCore", "LibArchive"], swiftSettings: swift6),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["MaasBackupCore", "LibPQ", "LibArchive"],
            swiftSettings: swift6
        ),
    ]
)
