import ArgumentParser
import Foundation
import MaasBackupCore

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check an archive against its manifest (and with --deep, load its dump into a throwaway cluster).",
        discussion: """
            Reads the archive to its end (gzip CRC-32 and lengths, tar), checks every member against the manifest \
            (sha256, size, type, mode, owner, mtime), that nothing else is in it, that no member is setuid, setgid or \
            carries extended attributes, that manifest.json is the last member but its signature manifest.sig, and \
            that this host's key or one of trusted_keys signed it (an unsigned archive only with --allow-unsigned). \
            Changes nothing but the stamp <archive>.verified that `list` shows, and the verify gauges that \
            `status` and the metrics show. Exit 65 on any mismatch. `latest` is the newest archive in the \
            destination (what the weekly maas-snapshot-backup-verify.timer checks, with --deep --with-remote: \
            the off-host copies too, on a sample, when remote: is configured).
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The archive: a path, a name in the destination, or latest (the newest there).")
    var archive: String?

    @Option(name: .long, help: "With --deep: the folder the throwaway cluster goes in (default: the destination's parent folder, on its file system; not $TMPDIR, often a tmpfs).")
    var scratchDir: String?

    @Flag(name: .long, help: "Check the restic repository of remote: instead (restic check --read-data-subset).")
    var remote = false

    @Option(name: .long, help: "With --remote or --with-remote: the part of the stored data to read and check, e.g. 5% (the default) or 100%.")
    var readDataSubset = "5%"

    @Flag(name: .long, help: "After the archive, also check the restic repository of remote: on a sample (as verify --remote), when the config has a remote: section; without one, nothing more (the weekly verify unit uses it).")
    var withRemote = false

    func validate() throws {
        if remote && archive != nil { throw ValidationError("give either an archive or --remote") }
        if !remote && archive == nil { throw ValidationError("missing the archive to verify (or --remote)") }
        if remote && deep { throw ValidationError("--deep applies to an archive, not to --remote") }
        if remote && withRemote { throw ValidationError("--with-remote goes with an archive; --remote checks the repository alone") }
        if scratchDir != nil && !deep { throw ValidationError("--scratch-dir applies to --deep only") }
        if let scratchDir, !scratchDir.hasPrefix("/") { throw ValidationError("--scratch-dir must be an absolute path, not \(scratchDir)") }
    }

    @Flag(name: .long, help: "Accept an archive that is not signed (made before archives were signed): its members are still checked against its manifest, but not who wrote the manifest.")
    var allowUnsigned = false

    @Flag(name: .long, help: "Also restore dump.sql into a throwaway PostgreSQL cluster and compare row counts and schema head.")
    var deep = false

    func run() async throws {
        try await Output.run(global) {
            Interruption.install()
            let config = try global.loadConfig()
            if remote {
                let r = try await RemoteOperations(config: config).verify(readDataSubset: readDataSubset)
                if global.json { Output.json(r); return }
                print("OK: \(r.repository): restic check passed, \(r.readDataSubset) of the data read (\(r.copies) cop\(r.copies == 1 ? "y" : "ies"), \(Human.bytes(r.storedBytes)) stored, \(String(format: "%.1f", r.durationMs / 1000)) s)")
                return
            }
            guard var archive else { return }
            if archive == "latest" {
                guard let newest = Catalog.entries(destination: config.destination).first else {
                    throw BackupError.unavailable("there is no backup in \(config.destination) to verify", hint: "take one first: maas-snapshot-backup")
                }
                archive = newest.archive
            }
            var log: LogSink?
            if !global.json { log = Output.sink }
            if withRemote {
                try await Self.runWithRemote(archive: archive, config: config, deep: deep, allowUnsigned: allowUnsigned,
                                             scratchDir: scratchDir, readDataSubset: readDataSubset, json: global.json, log: log)
                return
            }
            let r = try await VerifyPipeline.run(archive: archive, config: config, deep: deep, allowUnsigned: allowUnsigned,
                                                scratchDir: scratchDir, log: log)
            if global.json { Output.json(r) } else { Self.show(r) }
            if r.stamp == nil { Output.log(.warning, "maas-snapshot-backup: warning: could not write \(r.archive).verified") }
        }
    }

    /// The archive's report (or error), then the repository's; `--json`: the archive's fields with
    /// `remote` and `remote_error` beside them. Exits with the first failure's code.
    struct WithRemoteJSON: Encodable {
        var status: String
        var local: VerifyReport?
        var error: String?
        var exitCode: Int32?
        var remote: RemoteVerifyReport?
        var remoteError: String?
        enum Key: String, CodingKey { case status, error, exitCode, remote, remoteError }
        func encode(to encoder: any Encoder) throws {
            try local?.encode(to: encoder)
            var c = encoder.container(keyedBy: Key.self)
            try c.encode(status, forKey: .status)
            try c.encodeIfPresent(error, forKey: .error)
            try c.encodeIfPresent(exitCode, forKey: .exitCode)
            try c.encodeIfPresent(remote, forKey: .remote)
            try c.encodeIfPresent(remoteError, forKey: .remoteError)
        }
    }

    static func runWithRemote(archive: String, config: Config, deep: Bool, allowUnsigned: Bool, scratchDir: String?,
                              readDataSubset: String, json: Bool, log: LogSink?) async throws {
        let r = await VerifyWithRemote.run(archive: archive, config: config, deep: deep, allowUnsigned: allowUnsigned,
                                           scratchDir: scratchDir, readDataSubset: readDataSubset, log: log)
        if json {
            Output.json(WithRemoteJSON(status: r.firstError == nil ? "ok" : "error", local: r.local, error: r.localError?.description,
                                       exitCode: r.firstError?.code.rawValue, remote: r.remote, remoteError: r.remoteError?.description))
        } else if let l = r.local {
            show(l)
            if l.stamp == nil { Output.log(.warning, "maas-snapshot-backup: warning: could not write \(l.archive).verified") }
        }
        if let e = r.localError { Output.log(.error, "maas-snapshot-backup: error: \(e.description)") }
        if let x = r.remote, !json {
            print("OK: \(x.repository): restic check passed, \(x.readDataSubset) of the data read (\(x.copies) cop\(x.copies == 1 ? "y" : "ies"), \(Human.bytes(x.storedBytes)) stored, \(String(format: "%.1f", x.durationMs / 1000)) s)")
        }
        if let e = r.remoteError { Output.log(.error, "maas-snapshot-backup: error: remote: \(e.description)") }
        if let e = r.firstError { throw ArgumentParser.ExitCode(e.code.rawValue) }
    }

    static func show(_ r: VerifyReport) {
        print("OK: \(r.archive)")
        print("  backup:    \(Human.time(r.createdAt)) UTC, \(r.reason), host \(r.host), MAAS \(r.maasVersion ?? "unknown")")
        print("  contents:  \(r.members) members match the manifest; manifest.json and its signature are the last members; sidecar \(r.sidecar)")
        print("  signed:    \(r.signedBy == "unsigned" ? "no (accepted with --allow-unsigned)" : "by key " + r.signedBy)")
        print("  gzip:      \(Human.bytes(r.compressedBytes)) -> \(Human.bytes(r.uncompressedBytes)), CRC-32 and lengths right")
        print("  sha256:    \(r.sha256)")
        if let d = r.deep {
            print("  deep:      dump.sql loads into an empty cluster: \(d.tables) tables, \(d.rows) rows in \(d.databases.joined(separator: ", ")), schema head \(Human.head(d.schemaHead)) (\(String(format: "%.1f", d.durationMs / 1000)) s)")
            for w in d.warnings { print("  warning:   \(w)") }
        }
    }
}
