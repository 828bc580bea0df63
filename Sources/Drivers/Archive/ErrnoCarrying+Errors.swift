import LibArchive
import MSBKit
import Streams

// The errno the stream filters and the libarchive wrapper keep, asked through the kit's one
// protocol (ErrnoCarrying) where the run decides by it.

extension StreamError: ErrnoCarrying {
    public var carriedErrno: Errno? { errno.map { Errno(rawValue: $0) } }
}

extension ArchiveError: ErrnoCarrying {
    public var carriedErrno: Errno? { errno != 0 ? Errno(rawValue: errno) : nil }
}
