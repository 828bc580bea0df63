import Foundation
import MSBKit
#if canImport(Glibc)
import Glibc
#endif

/// Finds a .deb for each installed MAAS package version, so that a rollback needs no network:
/// apt's cache first (/var/cache/apt/archives), else rebuilt from the installed files by dpkg-repack.
public enum DebSaver {
    /// Returns package -> .deb path; rebuilt ones are written to `workDir`. Packages for which
    /// neither works are left out and named in `missing`.
    public static func collect(installed: [String: String], workDir: String,
                               cache: String = "/var/cache/apt/archives") async -> (debs: [String: String], missing: [String]) {
        var out: [String: String] = [:]
        var missing: [String] = []
        let cached = (try? FileManager.default.contentsOfDirectory(atPath: cache)) ?? []
        for (pkg, version) in installed.sorted(by: { $0.key < $1.key }) {
            // apt's cache names epochs with %3a.
            let prefix = "\(pkg)_\(version.replacingOccurrences(of: ":", with: "%3a"))_"
            if let hit = cached.first(where: { $0.hasPrefix(prefix) && $0.hasSuffix(".deb") }) {
                out[pkg] = cache + "/" + hit
                continue
            }
            if let repack = Command.find("dpkg-repack", extraDirs: ["/usr/bin"]) {
                let before = Set((try? FileManager.default.contentsOfDirectory(atPath: workDir)) ?? [])
                if let r = try? await Command.run(repack, ["--root=/", pkg], workingDirectory: workDir), r.succeeded {
                    let after = Set((try? FileManager.default.contentsOfDirectory(atPath: workDir)) ?? [])
                    if let made = after.subtracting(before).first(where: { $0.hasSuffix(".deb") }) {
                        out[pkg] = workDir + "/" + made
                        continue
                    }
                }
            }
            missing.append(pkg)
        }
        return (out, missing)
    }
}
