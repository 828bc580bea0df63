import Foundation
import Testing
import MaasBackupCore

/// Restore's database state is typed (DatabaseState) with the journal's JSON strings as raw
/// values: journals written before still decode, and each state writes back as the same string.
@Suite struct RestoreJournalDecodingTests {
    /// A restore journal as an older version wrote it (no `databases`, no `privateDir`).
    static func oldJournal(database: String) -> String {
        """
        {"runID":"r1","pid":1,"command":"rollback","archive":"/x","startedAt":"2026-12-01T00:00:00Z","phase":"restore-database",
         "stoppedServices":["maas-regiond","maas-rackd"],"servicesRestarted":false,"database":"\(database)",
         "swaps":[],"filesFinal":false}
        """
    }

    @Test("every state an old journal holds decodes, and only the swapped ones may hold the restored databases", arguments: [
        ("untouched", DatabaseState.untouched, false), ("loading", .loading, false), ("loaded", .loaded, false),
        ("checked", .checked, false), ("swapping", .swapping, true), ("swapped", .swapped, true), ("restored", .restored, true),
    ])
    func oldJournalDecodes(raw: String, state: DatabaseState, mayBeSwapped: Bool) throws {
        let record = try JSONDecoder().decode(RestoreRecord.self, from: Data(Self.oldJournal(database: raw).utf8))
        #expect(record.database == state)
        #expect(record.database.mayBeSwapped == mayBeSwapped)
        #expect(record.databases == nil && record.stoppedServices == ["maas-regiond", "maas-rackd"])
        let written = try JSONSerialization.jsonObject(with: JSONEncoder().encode(record)) as? [String: Any]
        #expect(written?["database"] as? String == raw)
    }

    @Test("an unknown state is an error, not a guess")
    func unknownStateFails() {
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(RestoreRecord.self, from: Data(Self.oldJournal(database: "half-swapped").utf8))
        }
    }
}
