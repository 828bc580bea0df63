import Foundation
import MSBKit
#if canImport(Glibc)
import Glibc
#endif

/// Which packages belong to MAAS, as far as the package hooks are concerned.
public enum MaasPackages {
    /// This tool's own package matches `maas-*` but is not part of MAAS: upgrading it must not
    /// trigger a backup.
    public static let excluded: Set<String> = ["maas-snapshot-backup"]

    /// `maas`, `maas-*`, `python3-django-maas`, `python3-maas-*` and `temporal`.
    /// An architecture qualifier (`maas-common:amd64`) is ignored.
    public static func isMaasPackage(_ name: String) -> Bool {
        let bare = name.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? name
        if excluded.contains(bare) { return false }
        return bare == "maas" || bare == "temporal" || bare == "python3-django-maas"
            || (bare.hasPrefix("maas-") && bare.count > 5)
            || (bare.hasPrefix("python3-maas-") && bare.count > 13)
    }

    /// The dpkg-query patterns that find them.
    public static let queryPatterns = ["maas", "maas-*", "python3-django-maas", "python3-maas-*", "temporal"]

    /// The MAAS version of a set of installed packages: the region's, else the `maas`
    /// metapackage's, else the rack's.
    public static func version(in installed: [String: String]) -> String? {
        installed["maas-region-controller"] ?? installed["maas"] ?? installed["maas-rack-controller"]
    }
}
