import Foundation
import Yams

/// What kind of MAAS region this host is, read from the files MAAS itself writes (README "Region
/// layouts"): regiond.conf (empty values count as unset: `maas config-vault migrate` empties
/// database_name, database_user and database_pass), Vault, this region's maas_id, a snap.
public enum RegionLayout {
    /// regiond.conf under the root as key -> value, without keys whose value is empty.
    public static func regiondConf(_ config: Config) throws -> [String: String] {
        let path = config.live("/etc/maas/regiond.conf")
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [:] }
        var out: [String: String] = [:]
        try SafeYAML.refuseAliases(text, source: path)
        do {
            if let node = try Yams.compose(yaml: text), case .mapping(let m) = node {
                for (k, v) in m {
                    if let ks = k.string, let vs = v.string, !vs.trimmingCharacters(in: .whitespaces).isEmpty { out[ks] = vs }
                }
            }
        } catch {
            throw BackupError.config("\(path) is not valid YAML", hint: "fix it, or set database.* in the config")
        }
        return out
    }

    /// regiond.conf's vault_url: MAAS keeps its secrets (BMC credentials, the database credentials
    /// after `maas config-vault migrate`, ...) in Vault. Only the URL; never the approle.
    public static func vaultURL(_ config: Config) -> String? {
        (try? regiondConf(config))?["vault_url"]
    }

    /// Why the database cannot be reached without more config: a remote database whose credentials
    /// MAAS moved into Vault (regiond.conf keeps no database_user), and no database.user or
    /// password_file in the config. nil otherwise.
    public static func vaultCredentialsMissing(_ config: Config) -> String? {
        guard let r = try? regiondConf(config), let vault = r["vault_url"] else { return nil }
        let host = r["database_host"] ?? ""
        let local = host.isEmpty || ["localhost", "127.0.0.1", "::1"].contains(host) || host.hasPrefix("/")
        let d = config.database
        guard !local, d.host == nil, d.user == nil, d.passwordFile == nil, r["database_user"] == nil else { return nil }
        return "regiond.conf has no database credentials for the remote database \(host): MAAS keeps them in Vault (\(vault)), which this tool does not read"
    }

    static package let vaultCredentialsHint = "set database.user, database.name and database.password_file in the config"

    /// The one line backup and restore print when the region uses Vault.
    public static func vaultWarning(_ url: String) -> String {
        "this region keeps its secrets (BMC credentials and others) in Vault at \(url), not in this archive: back Vault up with Vault's own tools (e.g. `vault operator raft snapshot save`)"
    }

    /// This host's region id (/var/lib/maas/maas_id), nil when it has none yet.
    public static func maasID(_ config: Config) -> String? {
        guard let s = try? String(contentsOfFile: config.live("/var/lib/maas/maas_id"), encoding: .utf8) else { return nil }
        let t = s.trimmingCharacters(in: .whitespacesAndNewlines)
        return t.isEmpty ? nil : t
    }
}

extension RegionLayout {
    /// /var/lib/maas/secret: the secret rack controllers register with, nil when there is none.
    public static func rackSecret(_ config: Config) -> String? {
        guard let s = try? String(contentsOfFile: config.live("/var/lib/maas/secret"), encoding: .utf8) else { return nil }
        let t = s.trimmingCharacters(in: .whitespacesAndNewlines)
        return t.isEmpty ? nil : t
    }

    /// maas_url from regiond.conf, else rackd.conf.
    public static func maasURL(_ config: Config) -> String? {
        for f in ["/etc/maas/regiond.conf", "/etc/maas/rackd.conf"] {
            guard let text = try? String(contentsOfFile: config.live(f), encoding: .utf8),
                  let node = try? SafeYAML.compose(text, source: f), case .mapping(let m) = node else { continue }
            for (k, v) in m where k.string == "maas_url" {
                if let s = v.string, !s.isEmpty { return s }
                if case .sequence(let seq) = v, let first = seq.first?.string { return first }
            }
        }
        return nil
    }
}
