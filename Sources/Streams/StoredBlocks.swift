import CZlib

/// Incompressible input (uploaded boot images: squashfs, tgz) as deflate's stored blocks: copied,
/// not compressed, so it archives at close to disk speed and grows by 5 bytes per 64 KiB.
///
/// A worker first deflates a sample of its block (three 4 KiB slices: start, middle, end) at
/// level 1; when that does not shrink it below 97%, the whole block is written as stored blocks
/// (RFC 1951 3.2.4: a header byte BFINAL/BTYPE=00, LEN, NLEN, the bytes) instead of deflated.
/// Every block of the writer starts and ends on a byte boundary (sync-flushed), so stored blocks
/// concatenate with deflated ones like any other.
final class IncompressibleProbe: @unchecked Sendable {
    static let slice = 4 * 1024
    static let minimumBlock = 3 * slice * 2
    /// A sample that deflates to at least this fraction of its size counts as incompressible.
    static let threshold = 0.97

    private let stream: UnsafeMutablePointer<z_stream>
    private let input: UnsafeMutablePointer<UInt8>
    private let output: UnsafeMutablePointer<UInt8>
    private let outputCapacity: Int

    init() throws {
        stream = try Deflate.makeStream(level: 1, windowBits: -15)
        input = .allocate(capacity: 3 * Self.slice)
        outputCapacity = Int(deflateBound(stream, uLong(3 * Self.slice))) + 64
        output = .allocate(capacity: outputCapacity)
    }

    func end() {
        Deflate.end(stream)
        input.deallocate()
        output.deallocate()
    }

    /// True when the sample of `block` does not deflate (small blocks are always deflated).
    func isIncompressible(_ block: DeflateBlock) -> Bool {
        guard block.length >= Self.minimumBlock, !block.injectFailure else { return false }
        let n = Self.slice
        for (i, offset) in [0, block.length / 2 - n / 2, block.length - n].enumerated() {
            (input + i * n).update(from: block.data + offset, count: n)
        }
        guard deflateReset(stream) == Z_OK else { return false }
        stream.pointee.next_in = input
        stream.pointee.avail_in = uInt(3 * n)
        stream.pointee.next_out = output
        stream.pointee.avail_out = uInt(outputCapacity)
        let rc = CZlib.deflate(stream, Z_FINISH)
        let produced = outputCapacity - Int(stream.pointee.avail_out)
        stream.pointee.next_in = nil
        stream.pointee.next_out = nil
        guard rc == Z_STREAM_END else { return false }
        return Double(produced) >= Double(3 * n) * Self.threshold
    }
}

extension DeflatePool {
    /// Writes `block` as stored blocks of at most 65535 bytes; the last one final when the block is.
    static func store(_ block: DeflateBlock) {
        block.crc = crc32_z(0, block.data, z_size_t(block.length))
        let pieces = max(1, (block.length + 65534) / 65535)
        let need = block.length + 5 * pieces
        block.outputLength = 0
        if block.outputCapacity < need { block.growOutput(atLeast: need) }
        var offset = 0, out = 0
        repeat {
            let n = min(65535, block.length - offset)
            let final = block.isLast && offset + n == block.length
            let header: [UInt8] = [final ? 1 : 0, UInt8(n & 0xff), UInt8(n >> 8), UInt8(~n & 0xff), UInt8((~n >> 8) & 0xff)]
            for (i, b) in header.enumerated() { block.output[out + i] = b }
            (block.output + out + 5).update(from: block.data + offset, count: n)
            out += 5 + n
            offset += n
        } while offset < block.length
        block.outputLength = out
    }
}
