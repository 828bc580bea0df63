import Foundation
import MaasBackupCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// restic's password file is opened and checked once and handed to restic as that descriptor
/// (issue 23): what is renamed over its name afterwards is never read.
@Suite("restic secrets: opened once", .serialized, .enabled(if: ResticFixture.skipReason == nil, "\(ResticFixture.skipReason ?? "")"))
struct ResticSecretFileTests {
    @Test("a file renamed over the password file after the check is never used: restic reads the checked descriptor")
    func passwordSwappedAfterCheck() async throws {
        let fx = try ResticFixture("pwswap")
        defer { fx.cleanup() }
        let repo = try fx.repository(fx.dir + "/repo")
        #expect(try await repo.initialize() == true)
        // Someone replaces the file by its name (here: the wrong password, root's and 0600 too).
        #expect(rename(fx.wrongPasswordFile, fx.passwordFile) == 0)
        let snaps = try await repo.snapshots()
        #expect(snaps.isEmpty, "restic opened the repository with the password checked at the start")
        // A repository opened now reads the new file, and restic refuses it.
        let later = try fx.repository(fx.dir + "/repo")
        let e = await ResticFixture.backupError { _ = try await later.snapshots() }
        #expect(e != nil, "the wrong password was accepted")
    }

    @Test("a FIFO or a symlink at the password file is refused at once (78), never blocking")
    func fifoAndSymlinkRefused() throws {
        let fx = try ResticFixture("pwfifo")
        defer { fx.cleanup() }
        let fifo = fx.dir + "/secrets/fifo"
        #expect(mkfifo(fifo, 0o600) == 0)
        let start = Date()
        do {
            _ = try fx.repository(fx.dir + "/repo", passwordFile: fifo)
            Issue.record("a FIFO was accepted as the password file")
        } catch let e as BackupError {
            #expect(e.code == .config && e.message.hasSuffix("is not a regular file"), "\(e)")
        }
        #expect(Date().timeIntervalSince(start) < 5)
        #expect(symlink(fx.passwordFile, fx.dir + "/secrets/link") == 0)
        do {
            _ = try fx.repository(fx.dir + "/repo", passwordFile: fx.dir + "/secrets/link")
            Issue.record("a symlink was accepted as the password file")
        } catch let e as BackupError {
            #expect(e.code == .config && e.message.hasSuffix("is a symbolic link"), "\(e)")
        }
    }
}
