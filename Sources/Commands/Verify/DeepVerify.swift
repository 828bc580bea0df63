import Foundation
import MSBKit
import MSBArchive
import MSBDatabase
#if canImport(Glibc)
import Glibc
#endif


package enum DeepVerify {
    /// `archive`: where to read it (ArchiveSource.readPath); `display`: its name in messages.
    /// The folder the throwaway cluster goes in by default: beside the destination, on its file
    /// system (not $TMPDIR, often a tmpfs: a large dump would fill RAM). The destination itself is
    /// root's 0700 folder, which postgres cannot enter.
    static package func defaultScratch(_ config: Config) -> String {
        (config.destination as NSString).deletingLastPathComponent
    }

    /// Refuses, in one line and before initdb, a scratch folder that is missing or too small for
    /// the cluster (about twice the dump, for the tables and their indexes, plus 64 MiB).
    static package func checkScratch(_ dir: String, manifest: Manifest) throws {
        var st = stat()
        guard stat(dir, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
            throw BackupError.unavailable("the scratch folder \(dir) for verify --deep is not a folder", hint: "create it, or give --scratch-dir another one")
        }
        let need = manifest.dump.size * 2 + (64 << 20)
        if let free = FileSystem.freeBytes(dir), free < need {
            throw BackupError.unavailable("not enough free space in \(dir) for the throwaway cluster of verify --deep: \(Human.bytes(free)) free, about \(Human.bytes(need)) needed",
                                          hint: "give --scratch-dir a folder with more room")
        }
    }

    /// The folder of the dump's PostgreSQL major's initdb, pg_ctl and psql, and the postgres user's
    /// uid and gid (the throwaway cluster runs as it).
    static func serverBinaries(manifest: Manifest, config: Config) throws -> (bin: String, uid: uid_t, gid: gid_t) {
        let major = manifest.database.serverVersion.prefix(while: { $0.isNumber })
        let bin = config.database.binDir ?? "/usr/lib/postgresql/\(major)/bin"
        for tool in ["initdb", "pg_ctl", "psql"] where !FileManager.default.isExecutableFile(atPath: bin + "/" + tool) {
            throw BackupError.unavailable("\(bin)/\(tool) is missing: --deep needs the PostgreSQL \(major) server binaries",
                                          hint: "apt-get install postgresql-\(major), or set database.bin_dir")
        }
        guard let pw = getpwnam("postgres") else {
            throw BackupError.unavailable("there is no postgres user to run the throwaway cluster as", hint: "install PostgreSQL")
        }
        return (bin, pw.pointee.pw_uid, pw.pointee.pw_gid)
    }

    static package func run(archive: String, display: String, manifest: Manifest, config: Config, scratchDir: String? = nil,
                            log: LogSink?) async throws -> DeepVerifyResult {
        let clock = Stopwatch()
        let (bin, uid, gid) = try serverBinaries(manifest: manifest, config: config)
        try Privilege.requireRoot("verify --deep", why: "it runs a throwaway cluster as postgres")
        let scratch = scratchDir ?? defaultScratch(config)
        try checkScratch(scratch, manifest: manifest)
        let tmp = try PrivateDir.makeTemporary(in: scratch)
        defer { tmp.remove() }
        guard chown(tmp.path, uid, gid) == 0 else {
            throw BackupError.failed("cannot hand \(tmp.path) to postgres: \(Errno.last.description)")
        }
        let data = tmp.path + "/data", sock = tmp.path + "/sock"
        guard mkdir(sock, 0o700) == 0, chown(sock, uid, gid) == 0 else {
            throw BackupError.failed("cannot create \(sock): \(Errno.last.description)")
        }
        log?(.info, "deep verify: initdb in \(tmp.path)")
        let initdb = try await Command.run(bin + "/initdb", ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                                                             "--locale=C.UTF-8", "--no-sync"], asUser: "postgres")
        guard initdb.succeeded else { throw BackupError.unavailable("initdb of the throwaway cluster failed: \(initdb.lastErrorLine)") }
        let opts = "-c listen_addresses='' -c unix_socket_directories='\(sock)' -c fsync=off -c full_page_writes=off -c synchronous_commit=off"
        let start = try await Command.run(bin + "/pg_ctl", ["-D", data, "-l", tmp.path + "/server.log", "-w", "-t", "120", "-o", opts, "start"],
                                          asUser: "postgres")
        guard start.succeeded else { throw BackupError.unavailable("the throwaway cluster did not start: \(start.lastErrorLine)") }
        let stop = { () async in
            _ = try? await Command.run(bin + "/pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"], asUser: "postgres")
        }
        do {
            let target = PostgresTarget(host: sock, port: nil, user: "postgres", maasDatabase: manifest.database.maasDatabase,
                                        scope: .maas, password: nil, osUser: ("postgres", uid, gid), binDir: bin)
            // Never the production cluster: the server we reach through this target must be the one in our folder.
            let probe = try target.connect(database: "postgres", passfile: nil)
            let dataDir = try? probe.exec("SHOW data_directory").scalar
            probe.finish()
            guard let dataDir, (dataDir as NSString).standardizingPath == (data as NSString).standardizingPath else {
                throw BackupError.failed("the throwaway cluster's socket \(sock) reached another server (\(dataDir ?? "?")); refusing to load dump.sql there")
            }
            try await DatabaseSwap.checkPsql(bin + "/psql")
            log?(.info, "deep verify: loading dump.sql (\(manifest.dump.size) bytes)")
            // psql's messages go to a file root can write and nobody else reads.
            let logDir = try PrivateDir.makeTemporary()
            defer { logDir.remove() }
            let stamp = ArchiveName.timestamp(Date())
            let names = Dictionary(uniqueKeysWithValues: manifest.database.databases.map { ($0, "\($0)_restoring_\(stamp)") })
            let all = manifest.database.databases
            // The same rules as restore: the roles part through the gate, each database loaded as its owner
            // (psql as postgres: the throwaway cluster trusts its socket, which only postgres reaches).
            let gate = try DatabaseSwap.rolesGate(target: target, passfile: nil, databases: all)
            var plan = DumpLoader.Plan(
                psql: bin + "/psql", osUser: "postgres", environment: target.environment(passfile: nil), names: names,
                maintenanceDatabase: DatabaseSwap.maintenanceDatabase(avoiding: all), roles: gate,
                ownerLogin: { db, owner in
                    try DatabaseSwap.ownerLogin(owner, db: db, target: target, passfile: nil, in: logDir, databases: Array(names.values), osUser: "postgres")
                },
                create: { spec, copy in try DatabaseSwap.create(spec, as: copy, target: target, passfile: nil, avoiding: all) })
            plan.jobs = config.database.effectiveLoadJobs
            let outcome = try await DumpLoader.load(archive: archive, plan: plan, errorLog: logDir.path + "/psql.log")
            if outcome.failed {
                throw BackupError.data("\(display): dump.sql does not load into an empty cluster: \(outcome.firstProblem)",
                                       hint: outcome.errors.count > 1 ? "\(outcome.errors.count) errors in all" : nil)
            }
            let check = try DatabaseCheck.compare(manifest: manifest, target: target, passfile: nil, names: names)
            if let p = check.problems.first {
                let more = check.problems.count > 1 ? " (and \(check.problems.count - 1) more)" : ""
                throw BackupError.data("\(display): the restored dump does not match the manifest: \(p)\(more)")
            }
            let result = DeepVerifyResult(serverBinaries: bin, databases: check.databases, tables: check.tables, rows: check.rows,
                                          schemaHead: check.schemaHead, expectedErrors: outcome.expected.count, warnings: check.warnings,
                                          durationMs: clock.elapsedMs.ms2)
            await stop()
            return result
        } catch {
            await stop()
            throw error
        }
    }
}
