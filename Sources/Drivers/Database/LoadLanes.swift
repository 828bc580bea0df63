import Foundation
import MSBKit
#if canImport(Glibc)
import Glibc
#endif

/// The psql sessions one phase of a database's load runs in (LoadRouter decides which line goes
/// where). One thread feeds them all: their pipes are non-blocking, each session keeps what its
/// psql has not taken yet, and the feeder waits (poll) only when the session it must add to holds
/// `capacity` bytes already, writing to every session meanwhile. A COPY block is cut into
/// sub-blocks of `copyChunk` bytes, each a COPY of its own, each sent to the session with the
/// least input waiting.
final package class LoadLanes {
    private(set) package var sessions: [PsqlSession] = []
    /// The sessions that ended, in order, for the messages.
    private(set) package var ended: [PsqlSession] = []
    package var statuses: [Int32] = []
    private let open: () throws -> PsqlSession
    package let capacity: Int
    package let copyChunk: Int
    /// The COPY block being sent: its header, the session of its sub-block and that sub-block's bytes.
    private var copyHeader: (line: [UInt8], number: Int)?
    private var copyLane = 0
    private var copyBytes = 0
    private var sinceWrite = 0

    package init(capacity: Int = 2 << 20, copyChunk: Int = 1 << 20, open: @escaping () throws -> PsqlSession) {
        self.capacity = capacity
        self.copyChunk = copyChunk
        self.open = open
    }

    package var isEmpty: Bool { sessions.isEmpty }

    /// Ends the open sessions (everything sent runs to its end), then opens `count` new ones, each
    /// given `preamble` first.
    package func start(_ count: Int, preamble: [(line: String, number: Int)]) throws {
        try finish()
        for _ in 0..<count {
            let s = try open()
            sessions.append(s)
            if count > 1 { try s.nonBlocking() }
            for p in preamble {
                s.sync(dumpLine: p.number)
                try s.send(p.line)
            }
        }
    }

    /// Sends dump.sql line `number` to session `lane`.
    package func send(_ line: UnsafeBufferPointer<UInt8>, number: Int, to lane: Int) throws {
        let s = sessions[lane]
        s.sync(dumpLine: number)
        try s.send(line)
        try fed(line.count + 1, lane: lane)
    }

    package func sendAll(_ line: UnsafeBufferPointer<UInt8>, number: Int) throws {
        for i in sessions.indices { try send(line, number: number, to: i) }
    }

    /// A COPY header: its first sub-block goes to the session with the least input waiting.
    package func copyStart(_ line: UnsafeBufferPointer<UInt8>, number: Int) throws {
        copyHeader = (Array(line), number)
        try nextSubBlock()
    }

    package func copyRow(_ line: UnsafeBufferPointer<UInt8>, number: Int) throws {
        if copyBytes >= copyChunk, copyHeader != nil {
            try endSubBlock(number: number)
            try nextSubBlock()
        }
        copyBytes += line.count + 1
        try send(line, number: number, to: copyLane)
    }

    package func copyEnd(_ line: UnsafeBufferPointer<UInt8>, number: Int) throws {
        try send(line, number: number, to: copyLane)
        copyHeader = nil
    }

    private func endSubBlock(number: Int) throws {
        try Array("\\.".utf8).withUnsafeBufferPointer { try send($0, number: number, to: copyLane) }
    }

    private func nextSubBlock() throws {
        guard let h = copyHeader else { return }
        copyLane = sessions.indices.min { sessions[$0].pending < sessions[$1].pending } ?? 0
        try wait(lane: copyLane, below: max(capacity - copyChunk, 0))
        copyBytes = 0
        try h.line.withUnsafeBufferPointer { try send($0, number: h.number, to: copyLane) }
    }

    /// After `bytes` more for `lane`: every 256 KiB fed, writes what each pipe takes now; waits when
    /// `lane` holds `capacity`.
    private func fed(_ bytes: Int, lane: Int) throws {
        guard sessions.count > 1 else { return }
        sinceWrite += bytes
        if sinceWrite >= 256 * 1024 {
            sinceWrite = 0
            for s in sessions where s.pending > 0 { try s.writeSome() }
        }
        if sessions[lane].pending >= capacity { try wait(lane: lane, below: capacity / 2) }
    }

    /// Writes to every session as its pipe takes it until `lane` holds less than `below` bytes.
    private func wait(lane: Int, below: Int) throws {
        while sessions[lane].pending > below {
            var fds = sessions.filter { $0.pending > 0 }.map { pollfd(fd: $0.pipeFD, events: Int16(POLLOUT), revents: 0) }
            _ = poll(&fds, nfds_t(fds.count), 1000)
            try Interruption.check()
            for s in sessions where s.pending > 0 { try s.writeSome() }
        }
    }

    /// Ends every open session: writes what they hold, closes their input and waits for them all.
    package func finish() throws {
        guard !sessions.isEmpty else { return }
        defer { closeAll() }
        for i in sessions.indices { try wait(lane: i, below: 0) }
    }

    /// Closes every session's input, then waits for each (they end side by side).
    package func closeAll() {
        let open = sessions
        sessions = []
        copyHeader = nil
        for s in open { s.closeInput() }
        for s in open { statuses.append(s.finish()); ended.append(s) }
    }
}
