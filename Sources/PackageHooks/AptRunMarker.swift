import Foundation
import MSBKit
import MSBPackages

/// The apt hook leaves a marker naming the apt process it ran for, so that the dpkg hook, run by
/// that same apt for each of its dpkg calls, knows the transaction was already handled (backed up
/// or judged not to need a backup) and does not decide again.
///
/// File: `/run/maas-snapshot-backup/apt-run-<apt pid>`, content: `<apt pid> <apt start time>\n`
/// (the start time tells a reused pid apart). /run is emptied at boot; stale markers of apt runs
/// that ended are removed with `staleMarkers`.
public enum AptRunMarker {
    public static let defaultDirectory = "/run/maas-snapshot-backup"
    public static let filePrefix = "apt-run-"

    /// Shells that can sit between apt and the hook (`sh -c "<hook>"`, the hook script).
    public static let shells: Set<String> = ["sh", "dash", "bash", "busybox", "apt-pre-install"]

    /// The apt (or other libapt front-end) process that ran the hook: the nearest ancestor that is
    /// not a shell. `ancestors` is nearest first.
    public static func frontEnd(in ancestors: [ProcessEntry]) -> ProcessEntry? {
        ancestors.first { !shells.contains($0.command) }
    }

    public static func fileName(for process: ProcessEntry) -> String { "\(filePrefix)\(process.pid)" }

    public static func content(for process: ProcessEntry) -> String { "\(process.pid) \(process.startTime)\n" }

    /// The process a marker's content names, if well formed.
    public static func parse(content: String) -> (pid: Int32, startTime: UInt64)? {
        let parts = content.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard parts.count == 2, let pid = Int32(parts[0]), let start = UInt64(parts[1]) else { return nil }
        return (pid, start)
    }

    /// The ancestor whose apt run left a matching marker, if any. `markers` maps file names to contents.
    public static func coveringRun(ancestors: [ProcessEntry], markers: [String: String]) -> ProcessEntry? {
        for process in ancestors {
            guard let content = markers[fileName(for: process)], let parsed = parse(content: content) else { continue }
            if parsed.pid == process.pid && parsed.startTime == process.startTime { return process }
        }
        return nil
    }

    /// Marker files whose apt process is gone (or whose pid now belongs to another process).
    public static func staleMarkers(_ markers: [String: String], isAlive: (Int32, UInt64) -> Bool) -> [String] {
        markers.compactMap { name, content in
            guard name.hasPrefix(filePrefix) else { return nil }
            guard let p = parse(content: content) else { return name }
            return isAlive(p.pid, p.startTime) ? nil : name
        }.sorted()
    }

    /// Reads all markers in `directory` (missing folder: none).
    public static func readMarkers(directory: String = defaultDirectory) -> [String: String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [:] }
        var out: [String: String] = [:]
        for name in names where name.hasPrefix(filePrefix) {
            if let data = FileManager.default.contents(atPath: directory + "/" + name), data.count < 256 {
                out[name] = String(decoding: data, as: UTF8.self)
            }
        }
        return out
    }

    /// Writes the marker for `process` (folder 0700, file 0600), replacing an old one.
    public static func write(for process: ProcessEntry, directory: String = defaultDirectory) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let path = directory + "/" + fileName(for: process)
        do {
            try AtomicFile.write(Array(content(for: process).utf8), to: path, mode: 0o600)
        } catch {
            throw BackupError(.cantCreate, "cannot write the apt run marker \(path): \(error)")
        }
    }

    /// Removes markers of apt runs that are over.
    @discardableResult
    public static func removeStale(directory: String = defaultDirectory, table: ProcessTable = ProcessTable()) -> [String] {
        let stale = staleMarkers(readMarkers(directory: directory)) { pid, start in
            table.entry(pid: pid)?.startTime == start
        }
        for name in stale { try? FileManager.default.removeItem(atPath: directory + "/" + name) }
        return stale
    }
}
