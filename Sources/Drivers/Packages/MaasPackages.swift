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

    /// The packages whose version is MAAS's, in the order they are read (README "Restore"): the
    /// region metapackage, the region itself (maas-region-api, alone on a region-only host), the
    /// `maas` metapackage, the rack, then maas-common (every MAAS 3.x host has it). All are built
    /// from one source at one version.
    public static let versionSources = ["maas-region-controller", "maas-region-api", "maas", "maas-rack-controller", "maas-common"]

    /// The MAAS version of a set of installed packages: that of the first of `versionSources`
    /// installed, else nil.
    public static func version(in installed: [String: String]) -> String? {
        versionSources.lazy.compactMap { installed[$0] }.first
    }
}
