import Foundation
import LibPQ
import MaasBackupCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Region layouts as MAAS really makes them: regiond.conf after `maas config-vault migrate`, several
/// region controllers on one database, the MAAS 3.5+ services, a patch-level upgrade, a snap.
@Suite("region layouts", .serialized, .enabled(if: TestEnv.skipReason == nil, "\(TestEnv.skipReason ?? "")"), .sharedEnv("regions"))
struct RegionLayoutTests {
    var shared: SharedEnv { get throws { try SharedEnv.get() } }

    /// A config like the environment's, without the database keys that regiond.conf should give.
    func writeConfig(_ env: TestEnv, name: String, root: String? = nil, database: String = "", extra: String = "") throws -> String {
        let path = env.dir + "/\(name).yaml"
        try """
            root: \(root ?? env.root)
            destination: \(env.backups)
            lock_file: \(env.dir)/lock
            state_dir: \(env.dir)/state
            signing_key: \(env.signingKey)
            \(database.isEmpty ? "" : "database:\n" + database)
            \(extra)
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// regiond.conf as `maas config-vault migrate` leaves it: database_* empty, the approle kept.
    func vaultRegiondConf(_ env: TestEnv) -> String {
        """
        database_host: \(env.dir)/pgsock
        database_name: ''
        database_pass: ''
        database_port: 5432
        database_user: ''
        maas_url: http://127.0.0.1:5240/MAAS
        vault_approle_id: 0d3c7ad2-approle-id-value
        vault_secret_id: 5f1e-secret-id-value
        vault_secrets_mount: secret
        vault_secrets_path: maas-regions-test
        vault_url: http://vault.example:8200

        """
    }

    /// A libpq connection that looks like a MAAS service of region `id` (`kind`: regiond or temporal).
    func maasConnection(_ env: TestEnv, kind: String, id: String) throws -> PQConnection {
        try PQConnection(parameters: [("host", env.dir + "/pgsock"), ("user", "postgres"), ("dbname", "maasdb"),
                                      ("application_name", "maas-\(kind)-\(id)")])
    }

    /// A dpkg database under the environment's root saying which MAAS is installed.
    func setInstalled(_ env: TestEnv, _ version: String?) throws {
        let admin = env.root + "/var/lib/dpkg"
        guard let version else { try? FileManager.default.removeItem(atPath: admin); return }
        for d in [admin, admin + "/info", admin + "/updates"] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        try """
            Package: maas-region-controller
            Status: install ok installed
            Priority: optional
            Section: net
            Maintainer: test
            Architecture: all
            Version: \(version)
            Description: stand-in

            """.write(toFile: admin + "/status", atomically: true, encoding: .utf8)
    }

    @Test("after `maas config-vault migrate` (database_* empty) the backup finds the MAAS database, records vault_url without the approle, and says Vault needs its own backup; the apt hook is not blocked")
    func vaultRegion() throws {
        let env = try shared.env
        let regiond = env.root + "/etc/maas/regiond.conf"
        let saved = try String(contentsOfFile: regiond, encoding: .utf8)
        defer { try? saved.write(toFile: regiond, atomically: true, encoding: .utf8) }
        try vaultRegiondConf(env).write(toFile: regiond, atomically: true, encoding: .utf8)
        let config = try writeConfig(env, name: "vault", extra: "services: [maas-regiond, maas-rackd]")

        let r = try env.tool(["--json", "--reason", "vault"], config: config)
        #expect(r.status == 0, "backup on a Vault region failed: \(r.stderr)")
        let j = RT.json(r)
        let warnings = (j["warnings"] as? [String]) ?? []
        #expect(warnings.contains { $0.contains("Vault") && $0.contains("http://vault.example:8200") }, "\(warnings)")
        let archive = try #require(j["archive"] as? String)
        let m = try RT.manifest(sidecarOf: archive)
        #expect(m.database.maasDatabase == "maasdb")
        #expect(m.database.databases == ["maasdb"])
        #expect(m.vaultUrl == "http://vault.example:8200")
        let sidecar = try String(contentsOfFile: archive + ".manifest.json", encoding: .utf8)
        #expect(!sidecar.contains("secret-id-value") && !sidecar.contains("approle-id-value"))
        #expect(!r.stderr.contains("secret-id-value"))

        // The human summary says it too.
        let h = try env.tool(["--reason", "vault-human"], config: config)
        #expect(h.status == 0, "\(h.stderr)")
        #expect(h.stdout.contains("Vault"), "\(h.stdout)")

        // The apt hook with hook.on_failure: block takes its backup and lets apt go on.
        let input = env.dir + "/apt-input"
        try "VERSION 3\nAPT::Architecture=amd64\n\nmaas-region-controller 1:3.4.0-1 amd64 none < 1:3.4.1-1 amd64 none /var/cache/apt/archives/m.deb\n"
            .write(toFile: input, atomically: true, encoding: .utf8)
        var e = env.environment
        e["APT_HOOK_INFO_FD"] = "3"
        let before = env.archives().count
        let hook = try TestEnv.sh(["/bin/bash", "-c", "exec 3<\"$1\"; exec \"$2\" apt-hook --config \"$3\"", "hook", input, TestEnv.binary, config], env: e)
        #expect(hook.status == 0, "the apt hook blocked a Vault host: \(hook.stderr)")
        #expect(env.archives().count == before + 1, "\(hook.stderr)")

        // The restore says it as well.
        let res = try env.tool(["restore", archive, "--yes", "--json"], config: config)
        #expect(res.status == 0, "\(res.stderr)")
        #expect(((RT.json(res)["warnings"] as? [String]) ?? []).contains { $0.contains("Vault") }, "\(res.stdout)")
        RT.removeAsideFolders(root: env.root)

        // A remote database whose credentials are in Vault: a clear error for a manual run; apt goes on.
        try vaultRegiondConf(env).replacingOccurrences(of: "database_host: \(env.dir)/pgsock", with: "database_host: db.example.invalid")
            .write(toFile: regiond, atomically: true, encoding: .utf8)
        let remote = try env.tool(["--dry-run"], config: config)
        #expect(remote.status == 78 && remote.stderr.contains("Vault") && remote.stderr.contains("database.password_file"), "\(remote.stderr)")
        let remoteHook = try TestEnv.sh(["/bin/bash", "-c", "exec 3<\"$1\"; exec \"$2\" apt-hook --config \"$3\"", "hook", input, TestEnv.binary, config], env: e)
        #expect(remoteHook.status == 0 && remoteHook.stderr.contains("the change goes on"), "\(remoteHook.stderr)")
        try vaultRegiondConf(env).write(toFile: regiond, atomically: true, encoding: .utf8)

        // Two databases holding MAAS tables: a clear error naming both and database.name.
        _ = try env.psql("CREATE DATABASE maasdb_old", db: "postgres")
        defer { _ = try? env.psql("DROP DATABASE maasdb_old", db: "postgres") }
        _ = try env.psql("CREATE TABLE maasserver_node (id int)", db: "maasdb_old")
        let two = try env.tool(["--dry-run"], config: config)
        #expect(two.status == 78, "\(two.stderr)")
        #expect(two.stderr.contains("maasdb") && two.stderr.contains("maasdb_old") && two.stderr.contains("database.name"), "\(two.stderr)")
        let named = try writeConfig(env, name: "vault-named", database: "  name: maasdb", extra: "services: [maas-regiond, maas-rackd]")
        #expect(try env.tool(["--dry-run"], config: named).status == 0)
    }

    @Test("another region connected: backup records it; restore and rollback refuse before anything changes; --force-other-regions goes on and says what it risks")
    func otherRegions() throws {
        let shared = try shared
        let env = shared.env
        try "thisregion\n".write(toFile: env.maas + "/maas_id", atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: env.maas + "/maas_id") }
        let mine = try maasConnection(env, kind: "regiond", id: "thisregion")
        defer { mine.finish() }
        let other = try maasConnection(env, kind: "regiond", id: "otherregion1")
        defer { other.finish() }
        let otherTemporal = try maasConnection(env, kind: "temporal", id: "otherregion1")
        defer { otherTemporal.finish() }

        let b = try env.tool(["--json", "--reason", "regions"])
        #expect(b.status == 0, "\(b.stderr)")
        let bj = RT.json(b)
        #expect(((bj["warnings"] as? [String]) ?? []).contains { $0.contains("otherregion1") && $0.contains("this host") }, "\(b.stdout)")
        let archive = try #require(bj["archive"] as? String)
        #expect(try RT.manifest(sidecarOf: archive).otherRegions == ["otherregion1"])

        let events = try env.psql("SELECT count(*) FROM maasserver_event")
        _ = try env.psql("DELETE FROM maasserver_event WHERE id % 5 = 0")
        let changed = try env.psql("SELECT count(*) FROM maasserver_event")
        #expect(changed != events)
        let calls = env.dir + "/svc/calls.log"
        let callsBefore = (try? String(contentsOfFile: calls, encoding: .utf8)) ?? ""

        for args in [["restore", archive, "--yes"], ["rollback", archive, "--yes"]] {
            let r = try env.tool(args)
            #expect(r.status == 69, "\(args[0]): \(r.stderr)")
            #expect(r.stderr.contains("maas-regiond-otherregion1") && r.stderr.contains("maas-temporal-otherregion1"), "\(r.stderr)")
            #expect(!r.stderr.contains("maas-regiond-thisregion"), "our own region counted as another: \(r.stderr)")
            #expect(r.stderr.contains("stop MAAS"), "\(r.stderr)")
            #expect(try env.psql("SELECT count(*) FROM maasserver_event") == changed, "\(args[0]) changed the database")
            #expect(RT.asideFolders(root: env.root).isEmpty)
            #expect(try env.isActive("maas-regiond"))
            let stops = { (log: String) in log.split(separator: "\n").filter { $0.contains(" stop ") }.count }
            #expect(stops((try? String(contentsOfFile: calls, encoding: .utf8)) ?? "") == stops(callsBefore), "\(args[0]) called systemctl stop")
            #expect(try other.exec("SELECT 1").scalar == "1", "the other region's session was ended")
        }

        let f = try env.tool(["restore", archive, "--yes", "--json", "--force-other-regions"])
        #expect(f.status == 0, "\(f.stderr)")
        let warnings = (RT.json(f)["warnings"] as? [String]) ?? []
        #expect(warnings.contains { $0.contains("maas-regiond-otherregion1") && $0.contains("restart") }, "\(warnings)")
        #expect(try env.psql("SELECT count(*) FROM maasserver_event") == events)
        RT.removeAsideFolders(root: env.root)
    }

    @Test("MAAS 3.5+: maas-http, maas-proxy and maas-syslog are default services, stopped (when active) and started again")
    func newServices() throws {
        let env = try shared.env
        let defaults = Config.defaultServices
        for s in ["maas-http", "maas-proxy", "maas-syslog"] { #expect(defaults.contains(s), "\(s) is not a default service") }
        // nginx in front stops first; syslog, which the others log to, last.
        #expect(defaults.first == "maas-http")
        #expect(defaults.last == "maas-syslog")
        #expect((defaults.firstIndex(of: "maas-proxy") ?? -1) > (defaults.firstIndex(of: "maas-regiond") ?? Int.max))

        // A maas-http stand-in that keeps a file open inside /var/lib/maas.
        let script = env.dir + "/svc/maas-http.sh"
        try """
            #!/usr/bin/env bash
            mkdir -p "\(env.maas)/http"; exec 3>>"\(env.maas)/http/nginx.log"
            stop=; trap 'stop=1' TERM INT
            while [ -z "$stop" ]; do echo x >&3; sleep 0.05 & wait $!; done

            """.write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        _ = try env.systemctl(["start", "maas-http"])
        defer { _ = try? env.systemctl(["stop", "maas-http"]); try? FileManager.default.removeItem(atPath: script) }
        let config = try writeConfig(env, name: "defaults", database: "  host: \(env.dir)/pgsock\n  user: postgres\n  name: maasdb\n  os_user: root")
        let archive = try shared.baselineArchive()
        let r = try env.tool(["restore", archive, "--yes", "--json"], config: config)
        #expect(r.status == 0, "\(r.stderr)")
        let plan = (RT.json(r)["plan"] as? [String: Any]) ?? [:]
        #expect((plan["services_to_stop"] as? [String]) == ["maas-http", "maas-regiond", "maas-rackd"], "\(plan)")
        #expect(try env.isActive("maas-http"))
        RT.removeAsideFolders(root: env.root)
    }

    @Test("installed MAAS newer by a patch version: restore runs `maas-region dbupgrade` after the files and database, before the services start; its failure fails the restore")
    func patchDbupgrade() throws {
        let env = try shared.env
        try setInstalled(env, "1:3.6.1-16333-g.1234567-0ubuntu1~22.04.1")
        defer { try? setInstalled(env, nil) }
        let b = try env.tool(["--json", "--reason", "patch"])
        #expect(b.status == 0, "\(b.stderr)")
        let archive = try #require(RT.json(b)["archive"] as? String)
        try setInstalled(env, "1:3.6.2-16401-g.abcdef0-0ubuntu1~22.04.1")

        let log = env.dir + "/maas-region.log"
        let stand = env.dir + "/bin/maas-region"
        try """
            #!/usr/bin/env bash
            echo "args: $* regiond: $(systemctl is-active maas-regiond) conf: $(test -f "\(env.root)/etc/maas/regiond.conf" && echo yes)" >> "\(log)"
            exit ${MAAS_REGION_STANDIN_RC:-0}

            """.write(toFile: stand, atomically: true, encoding: .utf8)
        chmod(stand, 0o755)
        defer { try? FileManager.default.removeItem(atPath: stand); try? FileManager.default.removeItem(atPath: log) }

        let r = try env.tool(["restore", archive, "--yes", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let ran = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(ran == "args: dbupgrade regiond: inactive conf: yes\n", "maas-region ran as: \(ran)")
        let j = RT.json(r)
        #expect(((j["warnings"] as? [String]) ?? []).contains { $0.contains("dbupgrade") }, "\(r.stdout)")
        #expect(try env.isActive("maas-regiond"))
        RT.removeAsideFolders(root: env.root)

        // The same major.minor.patch: no dbupgrade.
        try setInstalled(env, "1:3.6.1-16333-g.1234567-0ubuntu1~22.04.1")
        try? FileManager.default.removeItem(atPath: log)
        let same = try env.tool(["restore", archive, "--yes"])
        #expect(same.status == 0, "\(same.stderr)")
        #expect(!FileManager.default.fileExists(atPath: log))
        RT.removeAsideFolders(root: env.root)

        // dbupgrade fails: the restore fails, the previous files are back, MAAS runs.
        try setInstalled(env, "1:3.6.2-16401-g.abcdef0-0ubuntu1~22.04.1")
        try "marker\n".write(toFile: env.root + "/etc/maas/local-marker.conf", atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: env.root + "/etc/maas/local-marker.conf") }
        let bad = try env.tool(["restore", archive, "--yes"], env: ["MAAS_REGION_STANDIN_RC": "1"])
        #expect(bad.status == 1, "\(bad.stderr)")
        #expect(bad.stderr.contains("dbupgrade"), "\(bad.stderr)")
        #expect(FileManager.default.fileExists(atPath: env.root + "/etc/maas/local-marker.conf"), "the previous files were not put back")
        #expect(try env.isActive("maas-regiond"))
        RT.removeAsideFolders(root: env.root)
    }

    @Test("a snap-installed MAAS is refused in preflight with one line pointing to `snap save maas`; the apt hook lets apt go on")
    func snapRegion() throws {
        let shared = try shared
        let env = shared.env
        let snapRoot = env.dir + "/snaproot"
        try FileManager.default.createDirectory(atPath: snapRoot + "/var/snap/maas/current", withIntermediateDirectories: true)
        try "database_host: localhost\n".write(toFile: snapRoot + "/var/snap/maas/current/regiond.conf", atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: snapRoot) }
        let config = try writeConfig(env, name: "snap", root: snapRoot)

        let b = try env.tool(["backup"], config: config)
        #expect(b.status == 69, "\(b.stderr)")
        #expect(b.stderr.contains("snap save maas") && !b.stderr.contains("regiond.conf") && !b.stderr.contains("database"), "\(b.stderr)")
        #expect(b.stderr.split(separator: "\n").count == 1, "\(b.stderr)")
        let archive = try shared.baselineArchive()
        let r = try env.tool(["restore", archive, "--yes"], config: config)
        #expect(r.status == 69 && r.stderr.contains("snap save maas"), "\(r.stderr)")

        let input = env.dir + "/apt-input-snap"
        try "VERSION 3\nAPT::Architecture=amd64\n\nmaas-cli 1:3.4.0-1 amd64 none < 1:3.4.1-1 amd64 none /var/cache/apt/archives/m.deb\n"
            .write(toFile: input, atomically: true, encoding: .utf8)
        var e = env.environment
        e["APT_HOOK_INFO_FD"] = "3"
        let hook = try TestEnv.sh(["/bin/bash", "-c", "exec 3<\"$1\"; exec \"$2\" apt-hook --config \"$3\"", "hook", input, TestEnv.binary, config], env: e)
        #expect(hook.status == 0, "\(hook.stderr)")
        #expect(hook.stderr.contains("snap save maas"), "\(hook.stderr)")

        // The snap's unit active on a host that also has /etc/maas: refused as well.
        let unit = env.dir + "/svc/snap.maas.pebble.sh"
        try "#!/usr/bin/env bash\nstop=; trap 'stop=1' TERM\nwhile [ -z \"$stop\" ]; do sleep 0.1 & wait $!; done\n".write(toFile: unit, atomically: true, encoding: .utf8)
        chmod(unit, 0o755)
        _ = try env.systemctl(["start", "snap.maas.pebble"])
        defer { _ = try? env.systemctl(["stop", "snap.maas.pebble"]); try? FileManager.default.removeItem(atPath: unit) }
        let u = try env.tool(["backup"])
        #expect(u.status == 69 && u.stderr.contains("snap.maas.pebble") && u.stderr.contains("snap save maas"), "\(u.stderr)")
    }
}
