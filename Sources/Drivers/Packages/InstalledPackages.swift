import Foundation
import MSBKit

/// The MAAS packages installed, by dpkg-query.
public enum InstalledPackages {
    /// Installed MAAS packages and their versions; empty where dpkg has none (or no dpkg database under root).
    public static func installed(root: String) async -> [String: String] {
        guard let q = Command.find("dpkg-query") else { return [:] }
        var args = ["-W", "-f=${binary:Package}\\t${Version}\\t${db:Status-Abbrev}\\n"]
        if root != "/" {
            let admin = Config.join(root, "/var/lib/dpkg")
            guard FileManager.default.fileExists(atPath: admin + "/status") else { return [:] }
            args.append("--admindir=\(admin)")
        }
        guard let r = try? await Command.run(q, args + ["--"] + MaasPackages.queryPatterns) else { return [:] }
        var out: [String: String] = [:]
        for line in r.stdout.split(separator: "\n") {
            let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard f.count >= 3, !f[1].isEmpty else { continue }
            let status = Array(f[2])
            guard status.count >= 2, status[1] != "n", status[1] != "c" else { continue }
            let name = f[0].split(separator: ":").first.map(String.init) ?? f[0]
            if MaasPackages.isMaasPackage(name) { out[name] = f[1] }
        }
        return out
    }
}
