import Foundation

/// The repository's root (the folder holding Package.swift), found going up from a test file's
/// `#filePath`: tests sit in folders that mirror the targets they test, at any depth.
public enum RepoRoot {
    public static func of(_ filePath: String) -> String {
        var d = URL(fileURLWithPath: filePath).deletingLastPathComponent()
        while d.path != "/" {
            if FileManager.default.fileExists(atPath: d.appendingPathComponent("Package.swift").path) { return d.path }
            d = d.deletingLastPathComponent()
        }
        return "/nonexistent-repository-root"
    }
}
