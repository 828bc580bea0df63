// swift-tools-version: 6.1
// The fixture of scripts/check-imports-test.sh: C depends on B, B on A; C reaches A only through B.
import PackageDescription

let package = Package(
    name: "import-check-fixture",
    targets: [
        .target(name: "A"),
        .target(name: "B", dependencies: ["A"]),
        .target(name: "C", dependencies: ["B"]),
        .testTarget(name: "CTests", dependencies: ["C"]),
    ]
)
