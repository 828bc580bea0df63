import Foundation
import LibArchive
import MaasBackupCore
import Streams
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A backup whose destination fills up exits 73 ("cannot create the output"): decided by the
/// errno the failed write kept (ErrnoCarrying), never by the words of the error's message.
@Suite("a full destination is told by errno")
struct DestinationFullTests {
    static func code(_ error: any Error) -> ExitCode? { (BackupPipeline.destinationFull(error, destination: "/backups") as? BackupError)?.code }

    @Test("ENOSPC and EDQUOT from the streams, the libarchive wrapper and a system call are 73")
    func outOfSpace() {
        #expect(Self.code(StreamError.system(operation: "write", errno: ENOSPC, path: "/backups/a.partial")) == .cantCreate)
        #expect(Self.code(StreamError.system(operation: "fsync", errno: EDQUOT, path: nil)) == .cantCreate)
        #expect(Self.code(ArchiveError(function: "archive_write_data", errno: ENOSPC, message: "Write error")) == .cantCreate)
        #expect(Self.code(SystemCallError("write", errno: EDQUOT, message: "/backups/x.manifest.json")) == .cantCreate)
    }

    @Test("other errnos, errors without one, and a message that only says 'No space left on device' are left as they are")
    func notOutOfSpace() {
        #expect(Self.code(StreamError.system(operation: "write", errno: EIO, path: "/backups/a.partial")) == nil)
        #expect(Self.code(StreamError.zlib(operation: "deflate", code: -2, message: nil)) == nil)
        #expect(Self.code(ArchiveError(function: "archive_write_header", errno: 0, message: "No space left on device")) == nil)
        let text = BackupError.failed("pg_dump: error: could not write: \(Errno.noSpace.description)")
        #expect((BackupPipeline.destinationFull(text, destination: "/backups") as? BackupError)?.message == text.message)
        #expect(Self.code(BackupError(.config, "bad")) == .config)
    }
}
