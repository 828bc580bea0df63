import CArchive
import PathNames
#if canImport(Glibc)
import Glibc
#endif

/// An error from libarchive: the function, archive_errno and archive_error_string.
public struct ArchiveError: Error, Sendable, CustomStringConvertible {
    public var function: String
    public var errno: Int32
    public var message: String
    public init(function: String, errno: Int32, message: String) {
        self.function = function
        self.errno = errno
        self.message = message
    }
    public var description: String { "\(function): \(message)" }
}

/// A tar member's header, as plain values.
/// Names are bytes: a name that is not valid UTF-8 keeps its raw bytes in `pathBytes` (and
/// `linkTargetBytes`), which are what is written and extracted; `path` and `linkTarget` then hold
/// its readable form (`PathBytes.display`: each byte that is not UTF-8 as `\xHH`).
public struct EntryHeader: Sendable, Equatable {
    public var path: String
    /// The raw name when it is not valid UTF-8, else nil.
    public var pathBytes: [UInt8]?
    public var kind: EntryKind
    /// Permission bits including setuid/setgid/sticky (no file-type bits).
    public var permissions: UInt32
    public var uid: Int64
    public var gid: Int64
    public var uname: String?
    public var gname: String?
    public var size: Int64
    public var mtime: Int64
    public var mtimeNanoseconds: Int
    /// Symlink target, or for a hard link the member path it links to.
    public var linkTarget: String?
    /// The raw link target when it is not valid UTF-8, else nil.
    public var linkTargetBytes: [UInt8]?

    /// A key that tells any two names apart: `path`, or for a name that is not UTF-8 a NUL (never
    /// in a name) and its bytes in base64.
    public var key: String { PathBytes.key(path: path, bytes: pathBytes) }
    public var linkKey: String? { linkTarget.map { PathBytes.key(path: $0, bytes: linkTargetBytes) } }

    /// Sets `path` (and `pathBytes` when they are not UTF-8) from raw name bytes.
    public mutating func setPath(bytes: [UInt8]) {
        (path, pathBytes) = PathBytes.split(bytes)
    }

    public mutating func setLinkTarget(bytes: [UInt8]) {
        let (s, b) = PathBytes.split(bytes)
        linkTarget = s
        linkTargetBytes = b
    }

    /// The raw bytes of the name.
    public var rawPath: [UInt8] { pathBytes ?? Array(path.utf8) }

    public init(path: String, kind: EntryKind, permissions: UInt32, uid: Int64, gid: Int64,
                uname: String?, gname: String?, size: Int64, mtime: Int64, mtimeNanoseconds: Int = 0,
                linkTarget: String? = nil) {
        self.path = path; self.kind = kind; self.permissions = permissions
        self.uid = uid; self.gid = gid; self.uname = uname; self.gname = gname
        self.size = size; self.mtime = mtime; self.mtimeNanoseconds = mtimeNanoseconds
        self.linkTarget = linkTarget
    }
}

/// Calls `body` with `bytes` as a NUL-terminated C string.
public func withCBytes<T>(_ bytes: [UInt8], _ body: (UnsafePointer<CChar>) -> T) -> T {
    (bytes + [0]).withUnsafeBufferPointer { $0.withMemoryRebound(to: CChar.self) { body($0.baseAddress!) } }
}

/// The bytes of a C string.
public func cBytes(_ p: UnsafePointer<CChar>) -> [UInt8] {
    Array(UnsafeBufferPointer(start: UnsafeRawPointer(p).assumingMemoryBound(to: UInt8.self), count: strlen(p)))
}

// AE_IF* are cast macros that Swift does not import.
private let AE_IFREG: UInt32 = 0o100000
private let AE_IFDIR: UInt32 = 0o040000
private let AE_IFLNK: UInt32 = 0o120000

private func archiveError(_ a: OpaquePointer?, _ function: String) -> ArchiveError {
    let msg = a.flatMap { archive_error_string($0) }.map { String(cString: $0) } ?? "unknown libarchive error"
    return ArchiveError(function: function, errno: a.map { archive_errno($0) } ?? 0, message: msg)
}

@inline(__always)
private func check(_ a: OpaquePointer?, _ function: String, _ rc: Int32) throws {
    if rc < ARCHIVE_WARN { throw archiveError(a, function) }
}

/// Fills an archive_entry from an EntryHeader (archive_entry_set_* calls).
private func fill(_ e: OpaquePointer, _ h: EntryHeader) {
    // A name that is not UTF-8 goes in as its bytes (archive_entry_copy_pathname, the locale's
    // form, which is UTF-8 here): the pax writer cannot translate it and writes it raw with
    // hdrcharset=BINARY, and readers get the same bytes back.
    if let b = h.pathBytes { withCBytes(b) { archive_entry_copy_pathname(e, $0) } } else { archive_entry_set_pathname_utf8(e, h.path) }
    switch h.kind {
    case .file, .hardlink: archive_entry_set_filetype(e, AE_IFREG)
    case .directory: archive_entry_set_filetype(e, AE_IFDIR)
    case .symlink: archive_entry_set_filetype(e, AE_IFLNK)
    case .other: archive_entry_set_filetype(e, AE_IFREG)
    }
    archive_entry_set_perm(e, mode_t(h.permissions))
    archive_entry_set_uid(e, h.uid)
    archive_entry_set_gid(e, h.gid)
    if let u = h.uname { archive_entry_set_uname_utf8(e, u) }
    if let g = h.gname { archive_entry_set_gname_utf8(e, g) }
    archive_entry_set_mtime(e, time_t(h.mtime), h.mtimeNanoseconds)
    switch h.kind {
    case .symlink:
        if let b = h.linkTargetBytes { withCBytes(b) { archive_entry_copy_symlink(e, $0) } } else { archive_entry_set_symlink_utf8(e, h.linkTarget ?? "") }
    case .hardlink:
        if let b = h.linkTargetBytes { withCBytes(b) { archive_entry_copy_hardlink(e, $0) } } else { archive_entry_set_hardlink_utf8(e, h.linkTarget ?? "") }
        archive_entry_set_size(e, 0)
    case .file: archive_entry_set_size(e, h.size)
    default: archive_entry_set_size(e, 0)
    }
}

/// Reads an archive_entry into an EntryHeader (archive_entry_* getters).
private func header(of e: OpaquePointer) -> EntryHeader {
    let type = Int32(archive_entry_filetype(e))
    // The UTF-8 form when there is one, else the raw bytes (a name written with hdrcharset=BINARY).
    let hard = archive_entry_hardlink_utf8(e).map { cBytes($0) } ?? archive_entry_hardlink(e).map { cBytes($0) }
    var kind: EntryKind
    switch type {
    case Int32(AE_IFREG): kind = .file
    case Int32(AE_IFDIR): kind = .directory
    case Int32(AE_IFLNK): kind = .symlink
    default: kind = .other
    }
    if hard != nil { kind = .hardlink }
    let path = archive_entry_pathname_utf8(e).map { cBytes($0) }
        ?? archive_entry_pathname(e).map { cBytes($0) } ?? []
    let sym = archive_entry_symlink_utf8(e).map { cBytes($0) } ?? archive_entry_symlink(e).map { cBytes($0) }
    var h = EntryHeader(
        path: "", kind: kind, permissions: UInt32(archive_entry_perm(e)),
        uid: archive_entry_uid(e), gid: archive_entry_gid(e),
        uname: archive_entry_uname_utf8(e).map { String(cString: $0) },
        gname: archive_entry_gname_utf8(e).map { String(cString: $0) },
        size: archive_entry_size(e), mtime: Int64(archive_entry_mtime(e)),
        mtimeNanoseconds: Int(archive_entry_mtime_nsec(e)))
    h.setPath(bytes: path)
    if let t = kind == .symlink ? sym : hard { h.setLinkTarget(bytes: t) }
    return h
}

/// libarchive converts names between UTF-8 and the locale's character set; in the "C" locale a
/// non-ASCII name has no such form and the tar writer reads a NULL name. So the process's LC_CTYPE
/// is made UTF-8 once (C.UTF-8 unless it already is UTF-8) before any archive is opened.
public enum ArchiveLocale {
    public static let ensureUTF8: Void = {
        _ = setlocale(LC_CTYPE, "")
        if let cs = nl_langinfo(nl_item(CODESET)), String(cString: cs) == "UTF-8" { return }
        _ = setlocale(LC_CTYPE, "C.UTF-8")
    }()
}

/// Writes a pax tar stream (archive_write_new, set_format_pax_restricted, open with callbacks).
/// The bytes go to `output`, which is where compression filters plug in.
public final class TarWriter {
    private let a: OpaquePointer
    private let entry: OpaquePointer
    private let box: CallbackBox

    final class CallbackBox {
        let output: (UnsafeRawBufferPointer) throws -> Void
        var error: (any Error)?
        init(_ o: @escaping (UnsafeRawBufferPointer) throws -> Void) { output = o }
    }

    public init(output: @escaping (UnsafeRawBufferPointer) throws -> Void) throws {
        ArchiveLocale.ensureUTF8
        guard let a = archive_write_new() else { throw ArchiveError(function: "archive_write_new", errno: ENOMEM, message: "out of memory") }
        guard let e = archive_entry_new() else {
            archive_write_free(a)
            throw ArchiveError(function: "archive_entry_new", errno: ENOMEM, message: "out of memory")
        }
        self.a = a
        self.entry = e
        self.box = CallbackBox(output)
        try check(a, "archive_write_set_format_pax_restricted", archive_write_set_format_pax_restricted(a))
        try check(a, "archive_write_add_filter_none", archive_write_add_filter_none(a))
        // No blocking: every piece goes straight to `output` (a buffering filter itself), so that
        // when a call returns all of the tar stream so far has been handed over (a member can be
        // spliced in between, see `headerBytes`).
        try check(a, "archive_write_set_bytes_per_block", archive_write_set_bytes_per_block(a, 0))
        try check(a, "archive_write_set_bytes_in_last_block", archive_write_set_bytes_in_last_block(a, 1))
        let ctx = Unmanaged.passUnretained(box).toOpaque()
        let rc = archive_write_open(a, ctx, nil, { a, ctx, buf, len in
            let box = Unmanaged<TarWriter.CallbackBox>.fromOpaque(ctx!).takeUnretainedValue()
            do {
                try box.output(UnsafeRawBufferPointer(start: buf, count: len))
                return la_ssize_t(len)
            } catch {
                box.error = error
                _ = a
                return -1
            }
        }, nil)
        try rethrowing(rc, "archive_write_open")
    }

    deinit {
        archive_entry_free(entry)
        archive_write_free(a)
    }

    private func rethrowing(_ rc: Int32, _ function: String) throws {
        if let e = box.error { throw e }
        try check(a, function, rc)
    }

    /// archive_write_header.
    public func writeHeader(_ h: EntryHeader) throws {
        archive_entry_clear(entry)
        fill(entry, h)
        try rethrowing(archive_write_header(a, entry), "archive_write_header")
    }

    /// archive_write_data: all of `bytes`.
    public func writeData(_ bytes: UnsafeRawBufferPointer) throws {
        var off = 0
        while off < bytes.count {
            let n = archive_write_data(a, bytes.baseAddress! + off, bytes.count - off)
            if n < 0 { try rethrowing(Int32(n), "archive_write_data") }
            if n == 0 { throw archiveError(a, "archive_write_data") }
            off += n
        }
    }

    /// archive_write_finish_entry.
    public func finishEntry() throws {
        try rethrowing(archive_write_finish_entry(a), "archive_write_finish_entry")
    }

    /// archive_write_close: writes the end-of-archive blocks.
    public func close() throws {
        try rethrowing(archive_write_close(a), "archive_write_close")
    }

    /// The bytes archive_write_header writes for `h` in this format (a ustar header, preceded
    /// by a pax extended header when a field needs one, e.g. a size of 8 GiB or more), for a
    /// member whose data the caller writes itself: then `h.size` bytes of data and zeros up to
    /// a multiple of 512 must follow. Uses a throwaway writer whose output stops after the header.
    public static func headerBytes(_ h: EntryHeader) throws -> [UInt8] {
        final class Capture { var bytes: [UInt8] = []; var sealed = false }
        struct Sealed: Error {}
        let capture = Capture()
        let w = try TarWriter { chunk in
            if capture.sealed { throw Sealed() }
            capture.bytes.append(contentsOf: chunk)
        }
        // Sealed before the writer can go: freeing it makes libarchive write the member's data
        // as zeros (h.size bytes), which must be refused at the first block, not collected.
        // withExtendedLifetime: Swift may otherwise free `w` right after its last use.
        try withExtendedLifetime(w) {
            try w.writeHeader(h)
            capture.sealed = true
        }
        return capture.bytes
    }
}

/// Reads a tar(.gz) file (archive_read_new, support gzip + tar, open_filename).
public final class TarReader {
    private let a: OpaquePointer
    private var entry: OpaquePointer?

    public init(path: String, blockSize: Int = 128 * 1024) throws {
        ArchiveLocale.ensureUTF8
        guard let a = archive_read_new() else { throw ArchiveError(function: "archive_read_new", errno: ENOMEM, message: "out of memory") }
        self.a = a
        try check(a, "archive_read_support_filter_gzip", archive_read_support_filter_gzip(a))
        try check(a, "archive_read_support_filter_none", archive_read_support_filter_none(a))
        try check(a, "archive_read_support_format_tar", archive_read_support_format_tar(a))
        try check(a, "archive_read_open_filename", archive_read_open_filename(a, path, blockSize))
    }

    deinit { archive_read_free(a) }

    /// archive_read_next_header: nil at the end of the archive.
    public func nextHeader() throws -> EntryHeader? {
        let rc = archive_read_next_header(a, &entry)
        if rc == ARCHIVE_EOF { return nil }
        try check(a, "archive_read_next_header", rc)
        return header(of: entry!)
    }

    /// archive_read_data into `buffer`; 0 at the end of the member's data.
    public func readData(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = archive_read_data(a, buffer.baseAddress, buffer.count)
        if n < 0 { throw archiveError(a, "archive_read_data") }
        return n
    }

    /// The current member's data, chunk by chunk (archive_read_data into one reused buffer): the
    /// read loop of every reader of the program (verify, extract, the dump loader).
    public func forEachChunk(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        try chunkBuffer.withUnsafeMutableBytes { buf in
            while true {
                let n = try readData(into: buf)
                if n == 0 { return }
                try body(UnsafeRawBufferPointer(rebasing: buf[0..<n]))
            }
        }
    }
    private var chunkBuffer = [UInt8](repeating: 0, count: 256 * 1024)

    /// archive_read_data_skip.
    public func skipData() throws {
        try check(a, "archive_read_data_skip", archive_read_data_skip(a))
    }

    /// archive_filter_count > 1 and archive_filter_code(0): the compression in use.
    public var filterName: String {
        archive_filter_name(a, 0).map { String(cString: $0) } ?? "none"
    }

    /// The raw archive_entry of the current header, for DiskWriter.
    public var currentEntry: OpaquePointer? { entry }

    /// archive_entry_xattr_reset / archive_entry_xattr_next: the names of the current entry's
    /// extended attributes (pax SCHILY.xattr.* and LIBARCHIVE.xattr.* records).
    public func currentXattrNames() -> [String] {
        guard let e = entry, archive_entry_xattr_reset(e) > 0 else { return [] }
        var names: [String] = []
        var name: UnsafePointer<CChar>?
        var value: UnsafeRawPointer?
        var size = 0
        while archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK {
            names.append(name.map { String(cString: $0) } ?? "?")
        }
        return names
    }
}

/// Extracts members to disk safely (archive_write_disk_new with SECURE_* options,
/// owners by name through archive_write_disk_set_standard_lookup).
public final class DiskWriter {
    private let a: OpaquePointer

    public init(restoreOwners: Bool = true) throws {
        ArchiveLocale.ensureUTF8
        guard let a = archive_write_disk_new() else { throw ArchiveError(function: "archive_write_disk_new", errno: ENOMEM, message: "out of memory") }
        self.a = a
        var flags = ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_SECURE_NODOTDOT
            | ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS | ARCHIVE_EXTRACT_UNLINK
        if restoreOwners { flags |= ARCHIVE_EXTRACT_OWNER }
        try check(a, "archive_write_disk_set_options", archive_write_disk_set_options(a, flags))
        try check(a, "archive_write_disk_set_standard_lookup", archive_write_disk_set_standard_lookup(a))
    }

    deinit { archive_write_free(a) }

    /// archive_write_header for the reader's current entry, with its path moved under `prefix`
    /// (hard link targets too), after `mapPath` (raw path bytes to raw path bytes) when given.
    public func writeHeader(from reader: TarReader, pathPrefix prefix: String, mapPath: (([UInt8]) -> [UInt8])? = nil) throws {
        guard let e = reader.currentEntry, let clone = archive_entry_clone(e) else {
            throw ArchiveError(function: "archive_entry_clone", errno: ENOMEM, message: "no current entry")
        }
        defer { archive_entry_free(clone) }
        let h = header(of: e)
        // Never a setuid or setgid bit, never an extended attribute (file capabilities): verify
        // refuses such members, and the disk writer is told so too (archive_entry_set_perm,
        // archive_entry_xattr_clear).
        archive_entry_set_perm(clone, archive_entry_perm(clone) & ~mode_t(0o6000))
        archive_entry_xattr_clear(clone)
        // As bytes (archive_entry_copy_*, no conversion): a name that is not UTF-8 is extracted byte for byte.
        let map = mapPath ?? { $0 }
        withCBytes(Array((prefix + "/").utf8) + map(h.rawPath)) { archive_entry_copy_pathname(clone, $0) }
        if h.kind == .hardlink, let t = h.linkTarget {
            withCBytes(Array((prefix + "/").utf8) + map(h.linkTargetBytes ?? Array(t.utf8))) { archive_entry_copy_hardlink(clone, $0) }
        }
        try check(a, "archive_write_header", archive_write_header(a, clone))
    }

    /// archive_write_data.
    public func writeData(_ bytes: UnsafeRawBufferPointer) throws {
        let n = archive_write_data(a, bytes.baseAddress, bytes.count)
        if n < 0 { throw archiveError(a, "archive_write_data") }
    }

    /// archive_write_finish_entry.
    public func finishEntry() throws {
        try check(a, "archive_write_finish_entry", archive_write_finish_entry(a))
    }

    /// archive_write_close: applies deferred directory modes and times.
    public func close() throws {
        try check(a, "archive_write_close", archive_write_close(a))
    }
}
