import Foundation
import MSBKit
import LibPQ

/// The MAAS 3.5+ image rows: each maasserver_bootresourcefile with the file's name in
/// /var/lib/maas/image-storage and whether its resource is synced (rtype 0) or not. The columns
/// are found at run time: `sha256` and `size` came with 3.5.0, `filename_on_disk` with the 3.5
/// point releases (the file is named by it when set, else by sha256).
public enum BootImageRows {
    /// nil when the database has no image store (MAAS 3.4 and older: no `sha256` column, images
    /// are large objects in the dump).
    public static func read(_ c: PQConnection) throws -> [BootImageRow]? {
        let cols = Set(try c.exec("""
            SELECT column_name FROM information_schema.columns
            WHERE table_schema = 'public' AND table_name = 'maasserver_bootresourcefile'
            """).rows.compactMap { $0.first ?? nil })
        guard cols.contains("sha256") else { return nil }
        let name = cols.contains("filename_on_disk") ? "COALESCE(NULLIF(f.filename_on_disk, ''), f.sha256)" : "f.sha256"
        let size = cols.contains("size") ? "f.size" : "0"
        let rows = try c.exec("""
            SELECT \(name), f.sha256, \(size), r.rtype <> 0
            FROM public.maasserver_bootresourcefile f
            JOIN public.maasserver_bootresourceset s ON s.id = f.resource_set_id
            JOIN public.maasserver_bootresource r ON r.id = s.resource_id
            ORDER BY 1
            """).rows
        return rows.compactMap { r -> BootImageRow? in
            guard r.count == 4, let n = r[0], !n.isEmpty, !n.contains("/"), n != ".", n != ".." else { return nil }
            return BootImageRow(name: n, sha256: r[1] ?? "", size: Int64(r[2] ?? "0") ?? 0, kept: r[3] == "t")
        }
    }
}

extension PostgresAdapter {
    /// The image rows inside the pinned snapshot (the same instant as the dump and the files).
    public func bootImageRows(_ pin: PinnedSnapshot) throws -> [BootImageRow]? {
        do {
            return try BootImageRows.read(pin.connection)
        } catch let e as PQError {
            throw BackupError.failed("cannot read the boot image rows of \(pin.database): \(e.message)")
        }
    }

    /// The image rows as they are now (preflight's estimate); nil when there are none or they
    /// cannot be read (the estimate then counts every file).
    public func liveBootImageRows(passfile: String?) -> [BootImageRow]? {
        guard let c = try? target.connect(database: target.maasDatabase, passfile: passfile) else { return nil }
        defer { c.finish() }
        return (try? BootImageRows.read(c)) ?? nil
    }
}
