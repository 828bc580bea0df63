import Foundation
import MSBKit
import LibPQ

/// What a restored database holds, compared with the manifest.
public struct DatabaseCheckResult: Sendable, Codable {
    public var databases: [String]
    public var tables: Int
    public var rows: Int64
    public var schemaHead: SchemaHead
    /// Differences that do not fail the check (tables the backup did not have, outside the MAAS database).
    public var warnings: [String]
    /// Differences that fail it.
    public var problems: [String]
}

package enum DatabaseCheck {
    /// Row counts of every table of every dumped database, and the MAAS schema head, against the manifest.
    /// `names`: the database each dumped one is read from (its new copy, before the swap); default: its own name.
    static package func compare(manifest: Manifest, target: PostgresTarget, passfile: String?, names: [String: String] = [:]) throws -> DatabaseCheckResult {
        var out = DatabaseCheckResult(databases: manifest.database.databases, tables: 0, rows: 0, schemaHead: SchemaHead(),
                                      warnings: [], problems: [])
        let pg = PostgresAdapter(target: target)
        for db in manifest.database.databases {
            let c = try target.connect(database: names[db] ?? db, passfile: passfile)
            defer { c.finish() }
            let counts: [String: Int64]
            do { counts = try PostgresAdapter.rowCounts(c) } catch let e as PQError {
                throw BackupError.failed("cannot count rows in \(db): \(e.message)")
            }
            let want = manifest.database.rowCounts[db] ?? [:]
            for (table, n) in want.sorted(by: { $0.key < $1.key }) {
                guard let got = counts[table] else {
                    out.problems.append("\(db).\(table) is missing (the backup had \(n) rows)")
                    continue
                }
                if got != n { out.problems.append("\(db).\(table) has \(got) rows, the backup had \(n)") }
            }
            for table in counts.keys.sorted() where want[table] == nil {
                let line = "\(db).\(table) is not in the backup"
                if db == manifest.database.maasDatabase { out.problems.append(line) } else { out.warnings.append(line) }
            }
            out.tables += counts.count
            out.rows += counts.values.reduce(0, +)
            if db == manifest.database.maasDatabase {
                let head = try pg.schemaHead(PinnedSnapshot(database: db, connection: c))
                out.schemaHead = head
                if head != manifest.database.schemaHead {
                    out.problems.append("schema head \(describe(head)) differs from the backup's \(describe(manifest.database.schemaHead))")
                }
            }
        }
        return out
    }

    /// The MAAS database's schema head now.
    static package func schemaHead(target: PostgresTarget, database: String, passfile: String?) throws -> SchemaHead {
        let c = try target.connect(database: database, passfile: passfile)
        defer { c.finish() }
        return try PostgresAdapter(target: target).schemaHead(PinnedSnapshot(database: database, connection: c))
    }

    static package func describe(_ h: SchemaHead) -> String {
        var parts: [String] = []
        if let d = h.django { parts.append("django \(d)") }
        if let a = h.alembic { parts.append("alembic \(a)") }
        return parts.isEmpty ? "(none)" : parts.joined(separator: ", ")
    }
}
