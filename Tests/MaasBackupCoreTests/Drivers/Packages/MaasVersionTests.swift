import Foundation
import Testing
@testable import MaasBackupCore

/// The MAAS version read from whichever MAAS package is installed (README "Restore").
@Suite("maas version")
struct MaasVersionTests {
    @Test("a region-only host (maas-region-api, no maas-region-controller) has a version")
    func regionAPIOnly() {
        let installed = ["maas-region-api": "1:3.5.13-16492-g.abc-0ubuntu1~22.04.1", "maas-common": "1:3.5.13-16492-g.abc-0ubuntu1~22.04.1",
                         "python3-django-maas": "1:3.5.13-16492-g.abc-0ubuntu1~22.04.1"]
        #expect(MaasPackages.version(in: installed) == "1:3.5.13-16492-g.abc-0ubuntu1~22.04.1")
        #expect(RegionChecks.patchVersion(MaasPackages.version(in: installed)!) == "3.5.13")
    }

    @Test("the documented order: region metapackage, maas-region-api, maas, rack, maas-common")
    func order() {
        #expect(MaasPackages.version(in: ["maas-common": "c", "maas-rack-controller": "r", "maas-region-api": "a", "maas-region-controller": "m"]) == "m")
        #expect(MaasPackages.version(in: ["maas-common": "c", "maas-rack-controller": "r", "maas-region-api": "a"]) == "a")
        #expect(MaasPackages.version(in: ["maas-common": "c", "maas-rack-controller": "r"]) == "r")
        #expect(MaasPackages.version(in: ["maas-common": "c"]) == "c")
        #expect(MaasPackages.version(in: ["maas-cli": "x", "maas-snapshot-backup": "y"]) == nil)
    }
}
