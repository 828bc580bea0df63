// The archive step alone, for the backup benchmark (Benchmarks/backup/run.sh): the very code a
// backup runs for its files (ArchiveBuilder: a pax tar of the walked tree, SHA-256 of every
// file, the parallel gzip filter, an fsynced 0600 file), on a tree given here, with nothing else
// (no snapshot, no pg_dump beside it). So it can be timed on the same tree, under the same
// conditions, as `tar -czf` and `tar | pigz`. Prints one line of figures; asserts nothing.
//
// Usage: msb-bench-archive OUT SOURCE=MEMBER... [--exclude PATH]... [--level N] [--threads N]
//   e.g. msb-bench-archive /tmp/t.tgz /srv/root/var/lib/maas=var/lib/maas --exclude /var/lib/maas/counter
// Members are left out by the backup's own rule (BackupPipeline.skipRule) with the default
// config's excludes (boot-resources) plus each --exclude PATH, written as in the config.
// Defaults: level 6 and one thread per online CPU, as a backup with the default config.
import Foundation
import MaasBackupCore
#if canImport(Glibc)
import Glibc
#endif

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("msb-bench-archive: \(message)\n".utf8))
    exit(64)
}

var args = Array(CommandLine.arguments.dropFirst())
guard let out = args.first else {
    fail("usage: msb-bench-archive OUT SOURCE=MEMBER... [--exclude PATH]... [--level N] [--threads N]")
}
args.removeFirst()
var sources: [(String, String)] = []
let defaults = Config()
var exclude = defaults.exclude
var level = defaults.compressionLevel, threads = defaults.compressionThreads
while let a = args.first {
    args.removeFirst()
    switch a {
    case "--exclude":
        guard let path = args.first else { fail("--exclude needs a path, such as /var/lib/maas/counter") }
        exclude.append(path); args.removeFirst()
    case "--level", "--threads":
        guard let v = args.first.flatMap(Int.init) else { fail("\(a) needs a number") }
        if a == "--level" { level = v } else { threads = v }
        args.removeFirst()
    default:
        guard let eq = a.firstIndex(of: "=") else { fail("'\(a)' is not SOURCE=MEMBER") }
        sources.append((String(a[..<eq]), String(a[a.index(after: eq)...])))
    }
}
guard !sources.isEmpty else { fail("give at least one SOURCE=MEMBER") }
let skip = BackupPipeline.skipRule(exclude: exclude)

func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
var t0 = timespec(), t1 = timespec()
clock_gettime(CLOCK_MONOTONIC, &t0)
var files = 0
do {
    let builder = try ArchiveBuilder(path: out, level: level, threads: threads)
    for (src, member) in sources {
        files += try builder.addTree(source: src, member: member, skip: skip)
            .filter { $0.type == .file }.count
    }
    try builder.finish()
    clock_gettime(CLOCK_MONOTONIC, &t1)
    let wall = Double(t1.tv_sec - t0.tv_sec) + Double(t1.tv_nsec - t0.tv_nsec) / 1e9
    var ru = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &ru)
    let mib = Double(builder.bytesIn) / 1_048_576
    print(String(format: "bytes_in=%llu bytes_out=%llu files=%d wall_s=%.3f cpu_s=%.1f rss_mib=%.1f mib_per_s=%.1f threads=%d (0: one per CPU) level=%d",
                 builder.bytesIn, builder.compressedBytes, files, wall, seconds(ru.ru_utime) + seconds(ru.ru_stime),
                 Double(ru.ru_maxrss) / 1024, mib / wall, threads, level))
} catch {
    fail("\(error)")
}
