import Foundation
import LibArchive
import Digest
import Streams
#if canImport(Glibc)
import Glibc
#endif

/// One archived file as the manifest records it.
public struct FileRecord: Sendable, Codable, Equatable {
    public var path: String
    public var type: EntryKind
    public var size: Int64
    /// Permission bits, octal text such as "0640".
    public var mode: String
    public var uid: Int64
    public var gid: Int64
    public var user: String?
    public var group: String?
    public var mtime: Int64
    public var sha256: String?
    public var linkTarget: String?
}

/// Writes the backup archive: a pax tar, through the parallel gzip filter, into a file.
/// Each member's data is hashed as it streams. Not thread-safe.
public final class ArchiveBuilder {
    private let sink: FileSink
    private let gzip: ParallelGzipWriter
    private var tar: TarWriter!
    private var links: [String: String] = [:]  // "dev:ino" -> first member path
    private var users: [UInt32: String?] = [:]
    private var groups: [UInt32: String?] = [:]
    private var buffer = [UInt8](repeating: 0, count: 256 * 1024)
    public private(set) var bytesIn: UInt64 = 0
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
    public func addTree(source: String, member: String, skip: (String) -> Bool) throws -> [FileRecord] {
        var out: [FileRecord] = []
        try walk(source, member, skip, &out)
        return out
    }

    private func walk(_ src: String, _ member: String, _ skip: (String) -> Bool, _ out: inout [FileRecord]) throws {
        try checkInterrupted?()
        if skip(member) { return }
        var st = stat()
        guard lstat(src, &st) == 0 else {
            throw BackupError.failed("cannot read \(src): \(String(cString: strerror(errno)))")
        }
        let fmt = st.st_mode & S_IFMT
        var h = EntryHeader(path: member, kind: .file, permissions: UInt32(st.st_mode & 0o7777),
                            uid: Int64(st.st_uid), gid: Int64(st.st_gid),
                            uname: userName(st.st_uid), gname: groupName(st.st_gid),
                            size: 0, mtime: Int64(st.st_mtim.tv_sec), mtimeNanoseconds: Int(st.st_mtim.tv_nsec))
        switch fmt {
        case S_IFDIR:
            h.kind = .directory
            try tar.writeHeader(h)
            try tar.finishEntry()
            out.append(record(h, sha: nil))
            let names = try FileManager.default.contentsOfDirectory(atPath: src).sorted()
            for n in names { try walk(src + "/" + n, member + "/" + n, skip, &out) }
        case S_IFLNK:
            var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlink(src, &buf, buf.count - 1)
            guard n >= 0 else { throw BackupError.failed("cannot read the link \(src): \(String(cString: strerror(errno)))") }
            h.kind = .symlink
            h.linkTarget = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            try tar.writeHeader(h)
            try tar.finishEntry()
            out.append(record(h, sha: nil))
        case S_IFREG:
            let key = "\(st.st_dev):\(st.st_ino)"
            if st.st_nlink > 1, let first = links[key] {
                h.kind = .hardlink
                h.linkTarget = first
                try tar.writeHeader(h)
                try tar.finishEntry()
                out.append(record(h, sha: nil))
                return
            }
            if st.st_nlink > 1 { links[key] = member }
            h.size = Int64(st.st_size)
            let fd = open(src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else { throw BackupError.failed("cannot open \(src): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            let sha = try streamData(fd: fd, size: h.size, header: h, what: src)
            out.append(record(h, sha: sha))
        default:
            return  // sockets, fifos, devices
        }
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
        guard fd >= 0 else { throw BackupError.failed("cannot open \(spool.path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let copied = try gzip.appendRawDeflate(length: done.length, crc: done.crc, tail: done.tail) { buf in
            while true {
                try checkInterrupted?()
                let n = read(fd, buf.baseAddress, buf.count)
                if n >= 0 { return n }
                if errno != EINTR { throw BackupError.failed("cannot read \(spool.path): \(String(cString: strerror(errno)))") }
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
                    throw BackupError.failed("cannot read \(what): \(String(cString: strerror(errno)))")
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
        FileRecord(path: h.path, type: h.kind, size: h.kind == .file ? h.size : 0,
                   mode: String(format: "%04o", h.permissions), uid: h.uid, gid: h.gid,
                   user: h.uname, group: h.gname, mtime: h.mtime, sha256: sha, linkTarget: h.linkTarget)
    }

    /// Ends the tar stream and the gzip member, and fsyncs the file.
    public func finish() throws {
        try tar.close()
        try gzip.finish()  // finishes the file sink too, which fsyncs and closes it
    }
}

/// A member's data compressed ahead of its place in the archive: what is written to it is
/// hashed (SHA-256), counted, and compressed on its own threads into a raw deflate segment in a
/// spool file (0600), for `ArchiveBuilder.addSpooled` to splice in later. Used for dump.sql, so
/// the database dump is compressed while the files are archived instead of after them. One
/// writer thread at a time.
public final class MemberSpool {
    public struct Result: Sendable {
        public var length: UInt64
        public var compressedLength: UInt64
        public var crc: UInt
        public var tail: [UInt8]
        public var sha256: String
    }

    public let path: String
    private let file: FileSink
    private let deflate: ParallelGzipWriter
    private let digest: SHA256
    public private(set) var result: Result?
    public var bytesIn: UInt64 { deflate.bytesIn }

    public init(path: String, level: Int, threads: Int) throws {
        self.path = path
        file = try FileSink(path: path, permissions: 0o600, exclusive: true, syncOnFinish: false)
        deflate = try ParallelGzipWriter(downstream: file, level: level, threadCount: threads > 0 ? threads : nil,
                                         framing: .rawSegment)
        digest = try SHA256()
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        try digest.update(bytes)
        try deflate.write(bytes)
    }

    /// Reads `fd` to its end into the spool; `onProgress` gets the bytes so far.
    public func drain(fd: Int32, checkInterrupted: (() throws -> Void)? = nil, onProgress: ((UInt64) -> Void)? = nil) throws {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 * 1024, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            try checkInterrupted?()
            let n = read(fd, buffer.baseAddress, buffer.count)
            if n < 0 {
                if errno == EINTR { continue }
                throw BackupError.failed("cannot read the database dump: \(String(cString: strerror(errno)))")
            }
            if n == 0 { return }
            try write(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            onProgress?(deflate.bytesIn)
        }
    }

    /// Ends the segment and closes the spool file.
    @discardableResult
    public func finish() throws -> Result {
        try deflate.finish()
        let r = Result(length: deflate.bytesIn, compressedLength: file.bytesWritten, crc: deflate.crc,
                       tail: deflate.tail, sha256: try digest.finalizeHex())
        result = r
        return r
    }
}
