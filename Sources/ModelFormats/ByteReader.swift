/// Bounds-checked little-endian cursor over a byte buffer. Every read checks the remaining
/// length first, so malformed input produces `GGUFError.truncated` instead of a bad read.
struct ByteReader {
    let buffer: UnsafeRawBufferPointer
    private(set) var offset: Int

    init(_ buffer: UnsafeRawBufferPointer, offset: Int = 0) {
        self.buffer = buffer
        self.offset = offset
    }

    var remaining: Int { buffer.count - offset }

    mutating func need(_ n: Int, _ what: @autoclosure () -> String) throws {
        guard n >= 0, n <= remaining else {
            throw GGUFError.truncated(offset: offset, needed: n, fileSize: buffer.count, reading: what())
        }
    }

    mutating func read<T: FixedWidthInteger>(_ type: T.Type, _ what: @autoclosure () -> String) throws -> T {
        try need(MemoryLayout<T>.size, what())
        let v = buffer.baseAddress!.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += MemoryLayout<T>.size
        return T(littleEndian: v)
    }

    mutating func readFloat(_ what: @autoclosure () -> String) throws -> Float {
        Float(bitPattern: try read(UInt32.self, what()))
    }

    mutating func readDouble(_ what: @autoclosure () -> String) throws -> Double {
        Double(bitPattern: try read(UInt64.self, what()))
    }

    /// GGUF string: u64 byte length followed by UTF-8 bytes (not NUL-terminated).
    mutating func readString(_ what: @autoclosure () -> String) throws -> String {
        let start = offset
        let len = try read(UInt64.self, "length of \(what())")
        guard len <= UInt64(remaining) else {
            throw GGUFError.absurdLength(what: what(), length: len, offset: start, remaining: remaining)
        }
        let n = Int(len)
        let raw = UnsafeRawBufferPointer(rebasing: buffer[offset..<(offset + n)])
        offset += n
        return String(decoding: raw, as: UTF8.self)
    }

    mutating func skip(_ n: Int, _ what: @autoclosure () -> String) throws {
        try need(n, what())
        offset += n
    }
}
