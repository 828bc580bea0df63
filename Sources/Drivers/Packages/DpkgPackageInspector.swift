import Foundation
import MSBKit

/// The control fields of a .deb that matter to the hooks.
public struct DebControl: Sendable, Equatable {
    public var package: String
    public var version: String
    public var architecture: String
    public init(package: String, version: String, architecture: String) {
        self.package = package
        self.version = version
        self.architecture = architecture
    }
}

/// One package instance in dpkg's database.
public struct InstalledPackage: Sendable, Equatable {
    public var name: String
    public var architecture: String
    public var version: String
    /// Selection: unknown, install, hold, deinstall, purge.
    public var want: String
    /// not-installed, config-files, half-installed, unpacked, half-configured, triggers-awaited,
    /// triggers-pending, installed.
    public var status: String

    public init(name: String, architecture: String, version: String, want: String, status: String) {
        self.name = name
        self.architecture = architecture
        self.version = version
        self.want = want
        self.status = status
    }

    /// Files of this package are on disk (anything but not-installed and config-files).
    public var isPresent: Bool { status != "not-installed" && status != "config-files" && !status.isEmpty }
    /// Only its configuration files are left.
    public var isConfigFilesOnly: Bool { status == "config-files" }
}

/// Reads .deb control fields and dpkg's database. A protocol so that the hook's decision can be
/// tested without real packages.
public protocol DpkgPackageInspector: Sendable {
    func control(ofArchive path: String) async throws -> DebControl
    /// All instances (architectures) of `name` that dpkg knows; empty when none.
    func instances(of name: String) async throws -> [InstalledPackage]
    /// Every package dpkg knows.
    func allPackages() async throws -> [InstalledPackage]
}

/// The real inspector: `dpkg-deb --field` and `dpkg-query --show`, run as argument arrays.
public struct DpkgTools: DpkgPackageInspector {
    public var admindir: String?
    public var dpkgDeb: String
    public var dpkgQuery: String

    public init(admindir: String? = nil, dpkgDeb: String = "dpkg-deb", dpkgQuery: String = "dpkg-query") {
        self.admindir = admindir
        self.dpkgDeb = dpkgDeb
        self.dpkgQuery = dpkgQuery
    }

    static package let showFormat = "${Package}\\t${Architecture}\\t${Version}\\t${db:Status-Want}\\t${db:Status-Status}\\n"

    private func run(_ tool: String, _ arguments: [String]) async throws -> (status: Int32, out: String, err: String) {
        guard let exe = Command.find(tool) else {
            throw BackupError.unavailable("\(tool) is not installed", hint: "it comes with dpkg")
        }
        let r = try await Command.run(exe, arguments, environment: ["LC_ALL": "C.UTF-8"], limit: 64 << 20)
        return (r.status, r.stdout, r.stderr)
    }

    public func control(ofArchive path: String) async throws -> DebControl {
        let r = try await run(dpkgDeb, ["--field", "--", path, "Package", "Version", "Architecture"])
        guard r.status == 0 else {
            throw BackupError.data("dpkg-deb cannot read \(path): \(Self.firstLine(r.err))")
        }
        let fields = Self.parseFields(r.out)
        guard let p = fields["package"], let v = fields["version"] else {
            throw BackupError.data("\(path) has no Package or Version field")
        }
        return DebControl(package: p, version: v, architecture: fields["architecture"] ?? "")
    }

    private func query(_ names: [String]) async throws -> [InstalledPackage] {
        var args: [String] = []
        if let admindir { args += ["--admindir", admindir] }
        args += ["--show", "--showformat", Self.showFormat]
        if !names.isEmpty { args += ["--"] + names }
        let r = try await run(dpkgQuery, args)
        // Exit 1 with "no packages found matching": a name dpkg does not know.
        if r.status == 1, !names.isEmpty { return Self.parseShow(r.out) }
        guard r.status == 0 else {
            throw BackupError.unavailable("dpkg-query failed: \(Self.firstLine(r.err))")
        }
        return Self.parseShow(r.out)
    }

    public func instances(of name: String) async throws -> [InstalledPackage] {
        try await query([name]).filter { $0.name == name }
    }

    public func allPackages() async throws -> [InstalledPackage] {
        try await query([])
    }

    /// Parses `Field: value` lines from `dpkg-deb --field` (keys lower-cased).
    public static func parseFields(_ text: String) -> [String: String] {
        var out: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":"), !line.hasPrefix(" ") else { continue }
            let key = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            out[key] = value
        }
        return out
    }

    /// Parses the output of `dpkg-query --show --showformat=showFormat`.
    public static func parseShow(_ text: String) -> [InstalledPackage] {
        text.split(separator: "\n").compactMap { line in
            let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard f.count == 5, !f[0].isEmpty else { return nil }
            return InstalledPackage(name: f[0], architecture: f[1], version: f[2], want: f[3], status: f[4])
        }
    }

    static package func firstLine(_ s: String) -> String {
        let line = s.split(separator: "\n").first.map(String.init) ?? ""
        return line.isEmpty ? "no message" : line
    }
}
