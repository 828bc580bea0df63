import Foundation
import MSBKit
import LibArchive
import PathNames
import Digest
import Streams
#if canImport(Glibc)
import Glibc
#endif


/// Writes the backup archive: a pax tar, through the parallel gzip filter, into a file.
/// Each member's data is hashed as it streams. Not thread-safe.
public final class ArchiveBuilder {
    private let sink: FileSink
    private let gzip: ParallelGzipWriter
    private var tar: TarWriter!
    private var links: [String: [UInt8]] = [:]  // "dev:ino" -> first member path
    private var users: [UInt32: String?] = [:]
    private var groups: [UInt32: String?] = [:]
    private var buffer = [UInt8](repeating: 0, count: 256 * 1024)
    public private(set) var bytesIn: UInt64 = 0
    /// Members whose setuid or setgid bit was left out (restore never sets those bits; verify
    /// refuses a member that has them).
    public private(set) var strippedSpecialBits: [String] = []
    public var onProgress: ((UInt64) -> Void)?
    public var checkInterrupted: (() throws -> Void)?

    public init(path: String, level: Int, threads: Int) throws {
        sink = try FileSink(path: path, permissions: 0o600, exclusive: true, syncOnFinish: true)
        gzip = try ParallelGzipWriter(downstream: sink, level: level, threadCount: threads > 0 ? threads : nil)
        let g = gzip
        tar = try TarWriter(output: { try g.write($0) })
    }

    public var compressedBytes: UInt64 { sink.bytesWritten }

    private func userName(_ uid: UInt32) -> String? {
        if let n = users[uid] { return n }
        let n = getpwuid(uid).map { String(cString: $0.pointee.pw_name) }
        users[uid] = n
        return n
    }

    private func groupName(_ gid: UInt32) -> String? {
        if let n = groups[gid] { return n }
        let n = getgrgid(gid).map { String(cString: $0.pointee.gr_name) }
        groups[gid] = n
        return n
    }

    /// Adds `source` (a file or a folder, walked without following symlinks) as member `member`.
    /// `skip(member)` leaves a member (and what is below it) out. Sockets, fifos and devices are left out.
    ///
    /// The walk goes by descriptors: each entry is opened relative to its folder's descriptor
    /// (openat with O_NOFOLLOW|O_NONBLOCK, O_DIRECTORY for folders), so the depth is not limited by
    /// PATH_MAX and a path is never resolved again. What is opened must be what fstatat saw (same
    /// device, inode and type): a folder swapped for a symlink, or a file for a FIFO, fails the run
    /// (the data was not frozen) instead of being followed or blocking it. Names are bytes
    /// (readdir's d_name): a name that is not UTF-8 is archived and recorded as its bytes.
    public func addTree(source: String, member: String, skip: (String) -> Bool) throws -> [FileRecord] {
        _ = Self.raiseOpenFileLimit
        var out: [FileRecord] = []
        var src = source
        while src.count > 1 && src.hasSuffix("/") { src.removeLast() }
        let parent = src.contains("/") ? (src as NSString).deletingLastPathComponent : "."
        let name = (src as NSString).lastPathComponent
        let dfd = open(parent.isEmpty ? "/" : parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else { throw BackupError.failed("cannot open \(parent): \(Errno.last.description)") }
        defer { close(dfd) }
        let m = Array(member.utf8)
        // Depth first, with an explicit stack of open folders (no recursion: any depth fits).
        var stack: [Folder] = []
        defer { for f in stack { closedir(f.dir) } }
        if let f = try visit(dfd, name == "/" ? Array(".".utf8) : Array(name.utf8), what: src, member: m, display: member,
                             valid: true, skip, &out) {
            stack.append(f)
        }
        while let top = stack.indices.last {
            guard stack[top].next < stack[top].names.count else {
                closedir(stack.removeLast().dir)
                continue
            }
            let n = stack[top].names[stack[top].next]
            stack[top].next += 1
            let f = stack[top]
            let (text, raw) = PathBytes.split(n)
            if let child = try visit(dirfd(f.dir), n, what: f.what + "/" + text, member: f.member + [0x2F] + n,
                                     display: f.display + "/" + text, valid: f.valid && raw == nil, skip, &out) {
                stack.append(child)
            }
        }
        return out
    }

    /// The walk holds one descriptor per folder level: the soft RLIMIT_NOFILE (often 1024) is
    /// raised to the hard limit once, so that a deep tree does not run out of descriptors.
    static package let raiseOpenFileLimit: Void = {
        var rl = rlimit()
        let res = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        if getrlimit(res, &rl) == 0 && rl.rlim_cur < rl.rlim_max {
            rl.rlim_cur = rl.rlim_max
            _ = setrlimit(res, &rl)
        }
    }()

    private static func kindName(_ fmt: mode_t) -> String {
        switch fmt {
        case S_IFDIR: return "folder"
        case S_IFLNK: return "symlink"
        case S_IFREG: return "file"
        case S_IFIFO: return "FIFO"
        case S_IFSOCK: return "socket"
        default: return "device"
        }
    }

    /// Opens `name` in `dfd` without following it or blocking, and checks that it is what `planned`
    /// (fstatat) described.
    private func openChecked(_ dfd: Int32, _ name: [UInt8], _ planned: stat, what: String, folder: Bool) throws -> Int32 {
        var flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY
        if folder { flags |= O_DIRECTORY }
        let fd = withCBytes(name) { openat(dfd, $0, flags) }
        guard fd >= 0 else {
            let e = errno
            if e == ELOOP || e == ENOTDIR || e == ENXIO || e == ENOENT {
                throw changed(what, "it could not be opened as the \(Self.kindName(planned.st_mode & S_IFMT)) it was (\(Errno(rawValue: e).description))")
            }
            throw BackupError.failed("cannot open \(what): \(Errno(rawValue: e).description)")
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            close(fd)
            throw BackupError.failed("cannot read \(what): \(Errno.last.description)")
        }
        if st.st_dev != planned.st_dev || st.st_ino != planned.st_ino || (st.st_mode & S_IFMT) != (planned.st_mode & S_IFMT) {
            close(fd)
            throw changed(what, "a \(Self.kindName(planned.st_mode & S_IFMT)) was replaced by a \(Self.kindName(st.st_mode & S_IFMT))")
        }
        if !folder { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) }
        return fd
    }

    private func changed(_ what: String, _ how: String) -> BackupError {
        BackupError.failed("\(what) changed while it was archived: \(how); nothing was followed",
                           hint: "the data was not frozen; use a snapshot or keep the services stopped")
    }

    private static func bytes(of d: UnsafeMutablePointer<dirent>) -> [UInt8] {
        withUnsafePointer(to: &d.pointee.d_name) { p in
            p.withMemoryRebound(to: CChar.self, capacity: 256) { cBytes($0) }
        }
    }

    /// An open folder of the walk: its entries (sorted by bytes) and the next one to visit.
    private struct Folder {
        package let dir: OpaquePointer
        package var names: [[UInt8]]
        package var next = 0
        package let what: String
        package let member: [UInt8]
        package let display: String
        package let valid: Bool
    }

    /// The target of the symlink `name` in `dfd` (readlinkat, with a buffer grown until it fits).
    private func linkTarget(_ dfd: Int32, _ name: [UInt8], sizeHint: Int, what: String) throws -> [UInt8] {
        var size = max(sizeHint, 255) + 1
        while true {
            var buf = [UInt8](repeating: 0, count: size)
            let n = withCBytes(name) { p in buf.withUnsafeMutableBufferPointer { readlinkat(dfd, p, UnsafeMutableRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), size) } }
            guard n >= 0 else {
                if errno == EINVAL { throw changed(what, "a symlink was replaced by something else") }
                throw BackupError.failed("cannot read the link \(what): \(Errno.last.description)")
            }
            if n < size { return Array(buf[0..<n]) }
            size *= 2
        }
    }

    /// Archives one entry; for a folder, returns it open with its entries for the caller to visit.
    private func visit(_ dfd: Int32, _ name: [UInt8], what: String, member: [UInt8], display: String, valid: Bool,
                       _ skip: (String) -> Bool, _ out: inout [FileRecord]) throws -> Folder? {
        try checkInterrupted?()
        if skip(display) { return nil }
        var st = stat()
        guard withCBytes(name, { fstatat(dfd, $0, &st, AT_SYMLINK_NOFOLLOW) }) == 0 else {
            throw BackupError.failed("cannot read \(what): \(Errno.last.description)")
        }
        let fmt = st.st_mode & S_IFMT
        var h = EntryHeader(path: display, kind: .file, permissions: UInt32(st.st_mode & 0o7777),
                            uid: Int64(st.st_uid), gid: Int64(st.st_gid),
                            uname: userName(st.st_uid), gname: groupName(st.st_gid),
                            size: 0, mtime: Int64(st.st_mtim.tv_sec), mtimeNanoseconds: Int(st.st_mtim.tv_nsec))
        if !valid { h.pathBytes = member }
        if h.permissions & 0o6000 != 0 && (fmt == S_IFREG || fmt == S_IFDIR) {
            strippedSpecialBits.append(display + " (" + String(format: "%04o", h.permissions) + ")")
            h.permissions &= ~0o6000
        }
        switch fmt {
        case S_IFDIR:
            let fd = try openChecked(dfd, name, st, what: what, folder: true)
            guard let dir = fdopendir(fd) else {
                close(fd)
                throw BackupError.failed("cannot read the folder \(what): \(Errno.last.description)")
            }
            var handed = false
            defer { if !handed { closedir(dir) } }
            h.kind = .directory
            try tar.writeHeader(h)
            try tar.finishEntry()
            out.append(record(h, sha: nil))
            var names: [[UInt8]] = []
            while true {
                errno = 0
                guard let d = readdir(dir) else {
                    if errno != 0 { throw BackupError.failed("cannot read the folder \(what): \(Errno.last.description)") }
                    break
                }
                let n = Self.bytes(of: d)
                if n == [0x2E] || n == [0x2E, 0x2E] { continue }
                names.append(n)
            }
            names.sort { $0.lexicographicallyPrecedes($1) }
            handed = true
            return Folder(dir: dir, names: names, what: what, member: member, display: display, valid: valid)
        case S_IFLNK:
            let target = try linkTarget(dfd, name, sizeHint: Int(st.st_size), what: what)
            h.kind = .symlink
            h.setLinkTarget(bytes: target)
            try tar.writeHeader(h)
            try tar.finishEntry()
            out.append(record(h, sha: nil))
        case S_IFREG:
            let key = "\(st.st_dev):\(st.st_ino)"
            if st.st_nlink > 1, let first = links[key] {
                h.kind = .hardlink
                h.setLinkTarget(bytes: first)
                try tar.writeHeader(h)
                try tar.finishEntry()
                out.append(record(h, sha: nil))
                return nil
            }
            let fd = try openChecked(dfd, name, st, what: what, folder: false)
            defer { close(fd) }
            if st.st_nlink > 1 { links[key] = member }
            h.size = Int64(st.st_size)
            let sha = try streamData(fd: fd, size: h.size, header: h, what: what)
            out.append(record(h, sha: sha))
        default:
            return nil  // sockets, fifos, devices
        }
        return nil
    }

    /// Writes a member whose data was compressed beforehand by a `MemberSpool` (dump.sql,
    /// compressed while the files were archived): its tar header (size from the spool) goes
    /// through the gzip filter, then the spool's deflate segment is spliced in, then the tar
    /// padding. The archive stays one tar stream in one gzip member.
    public func addSpooled(_ spool: MemberSpool, header: EntryHeader) throws -> FileRecord {
        guard let done = spool.result else { throw BackupError.failed("\(header.path) was not spooled completely") }
        var h = header
        h.size = Int64(done.length)
        try gzip.write(try TarWriter.headerBytes(h))
        let fd = open(spool.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw BackupError.failed("cannot open \(spool.path): \(Errno.last.description)") }
        defer { close(fd) }
        let copied = try gzip.appendRawDeflate(length: done.length, crc: done.crc, tail: done.tail) { buf in
            while true {
                try checkInterrupted?()
                let n = read(fd, buf.baseAddress, buf.count)
                if n >= 0 { return n }
                if errno != EINTR { throw BackupError.failed("cannot read \(spool.path): \(Errno.last.description)") }
            }
        }
        guard copied == done.compressedLength else {
            throw BackupError.failed("\(spool.path) holds \(copied) bytes, not the \(done.compressedLength) written")
        }
        let pad = Int((512 - done.length % 512) % 512)
        if pad > 0 { try gzip.write([UInt8](repeating: 0, count: pad)) }
        bytesIn += done.length
        return record(h, sha: done.sha256)
    }

    /// Writes a member from bytes in memory (manifest.json).
    public func addBytes(_ bytes: [UInt8], header: EntryHeader) throws {
        var h = header
        h.size = Int64(bytes.count)
        try tar.writeHeader(h)
        try bytes.withUnsafeBytes { try tar.writeData($0) }
        try tar.finishEntry()
    }

    private func streamData(fd: Int32, size: Int64, header: EntryHeader, what: String) throws -> String {
        try tar.writeHeader(header)
        let digest = try SHA256()
        var left = size
        try buffer.withUnsafeMutableBytes { buf in
            while left > 0 {
                try checkInterrupted?()
                let want = Int(min(Int64(buf.count), left))
                let n = read(fd, buf.baseAddress, want)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw BackupError.failed("cannot read \(what): \(Errno.last.description)")
                }
                if n == 0 {
                    throw BackupError.failed("\(what) shrank while it was archived (\(size - left) of \(size) bytes)",
                                             hint: "the data was not frozen; use a snapshot or keep the services stopped")
                }
                let chunk = UnsafeRawBufferPointer(rebasing: buf[0..<n])
                try digest.update(chunk)
                try tar.writeData(chunk)
                left -= Int64(n)
                bytesIn += UInt64(n)
                onProgress?(bytesIn)
            }
        }
        try tar.finishEntry()
        return try digest.finalizeHex()
    }

    private func record(_ h: EntryHeader, sha: String?) -> FileRecord {
        FileRecord(path: h.path, pathB64: h.pathBytes.map(PathBytes.base64), type: h.kind, size: h.kind == .file ? h.size : 0,
                   mode: String(format: "%04o", h.permissions), uid: h.uid, gid: h.gid,
                   user: h.uname, group: h.gname, mtime: h.mtime, sha256: sha, linkTarget: h.linkTarget,
                   linkTargetB64: h.linkTargetBytes.map(PathBytes.base64))
    }

    /// Ends the tar stream and the gzip member, and fsyncs the file.
    public func finish() throws {
        try tar.close()
        try gzip.finish()  // finishes the file sink too, which fsyncs and closes it
    }
}
