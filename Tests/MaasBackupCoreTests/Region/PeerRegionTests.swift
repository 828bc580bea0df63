import Foundation
import Testing
@testable import MaasBackupCore

/// Other regions: found by application_name and by the MAAS role's other client addresses, and
/// what each needs after a restore or rollback (README "Region layouts").
@Suite("peer regions")
struct PeerRegionTests {
    @Test("a region whose services set no application_name is found by the MAAS role's address; this host's addresses are not")
    func byAddress() {
        let rows: [(app: String, address: String, sessions: Int, maasRole: Bool)] = [
            ("maas-regiond-mine", "10.0.0.1", 4, true),
            ("", "10.0.0.1", 2, true),                     // our own maas-apiserver
            ("maas-regiond-peer1", "10.0.0.2", 3, true),
            ("", "10.0.0.2", 1, true),                     // peer1's maas-apiserver: already named
            ("", "10.0.0.3", 2, true),                     // a region running only maas-apiserver/temporal-worker
            ("maas-temporal-worker", "10.0.0.3", 1, true),
            ("psql", "10.0.0.9", 1, false),                // another role: not MAAS
            ("", "", 1, true),                             // the local socket: this host
            ("", "192.168.1.5", 1, true),                  // one of this host's addresses
        ]
        let c = RegionLayout.classify(rows, ownID: "mine", localAddresses: ["127.0.0.1", "192.168.1.5"])
        #expect(c.map(\.label) == ["peer1", "host 10.0.0.3"], "\(c)")
        #expect(c.last?.sessions == 3)
        #expect(RegionLayout.ids(c) == ["host 10.0.0.3", "peer1"])
    }

    @Test("restore and rollback say what each recorded and connected region needs")
    func needs() {
        let connected = [RegionLayout.Connection(applicationName: "", maasId: "", clientAddress: "10.0.0.3", sessions: 2)]
        let roll = RegionChecks.peerNeeds(recorded: ["peer1"], connected: connected, backupVersion: "1:3.4.10-14650-g.abc-0ubuntu1", command: "rollback")
        #expect(roll.count == 2)
        #expect(roll[0].hasPrefix("region peer1 (recorded at backup time)") && roll[0].contains("roll it back too") && roll[0].contains("3.4.10"), "\(roll)")
        #expect(roll[1].hasPrefix("region host 10.0.0.3 (connected now, not recorded at backup time)"), "\(roll)")
        let restore = RegionChecks.peerNeeds(recorded: ["peer1"], connected: [], backupVersion: "1:3.5.13", command: "restore")
        #expect(restore == ["region peer1 (recorded at backup time): it must run MAAS 3.5.13 and restore its own /etc/maas and /var/lib/maas from its backup of the same time, or be re-initialised; restart its MAAS afterwards"])
        #expect(RegionChecks.peerNeeds(recorded: [], connected: [], backupVersion: nil, command: "restore").isEmpty)
    }
}
