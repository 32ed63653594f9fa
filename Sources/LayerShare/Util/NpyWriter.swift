import Foundation

/// Streams a float32 array to a NumPy `.npy` v1.0 file: the header goes out first, then values
/// are appended in row-major order as they are produced, so the whole array never has to be in
/// memory (e.g. logits [tokens, vocab] of a long evaluation).
///
/// Call `close()` at the end: it checks that exactly product(shape) values were written.
public final class NpyWriter {
    public let shape: [Int]
    /// Values written so far.
    public private(set) var writtenCount = 0
    private let expectedCount: Int
    private var handle: FileHandle?

    /// Creates (or truncates) the file at `url` and writes the header.
    public init(url: URL, shape: [Int]) throws {
        guard shape.allSatisfy({ $0 >= 0 }) else { throw NpyError.invalidShape(shape) }
        self.shape = shape
        self.expectedCount = shape.reduce(1, *)
        guard FileManager.default.createFile(atPath: url.path, contents: Data(NpyFormat.header(shape: shape))) else {
            throw FileAccessError("cannot write \(url.path): \(String(cString: strerror(errno)))")
        }
        let handle = try FileHandle(forWritingTo: url)
        try handle.seekToEnd()
        self.handle = handle
    }

    /// Appends values (any number, e.g. one row); throws if they overflow the declared shape.
    public func write(_ values: UnsafeBufferPointer<Float>) throws {
        guard let handle else { preconditionFailure("NpyWriter used after close()") }
        guard writtenCount + values.count <= expectedCount else {
            throw NpyError.wrongValueCount(expected: expectedCount, written: writtenCount + values.count)
        }
        #if _endian(little)
        try handle.write(contentsOf: UnsafeRawBufferPointer(values))
        #else
        try handle.write(contentsOf: values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) })
        #endif
        writtenCount += values.count
    }

    public func write(_ values: [Float]) throws {
        try values.withUnsafeBufferPointer { try write($0) }
    }

    /// Closes the file; throws if fewer values than the shape needs were written.
    public func close() throws {
        guard let handle else { return }
        self.handle = nil
        try handle.close()
        guard writtenCount == expectedCount else {
            throw NpyError.wrongValueCount(expected: expectedCount, written: writtenCount)
        }
    }

    deinit { try? handle?.close() }

    /// Writes a whole array in one go.
    public static func write(_ values: [Float], shape: [Int], to url: URL) throws {
        let writer = try NpyWriter(url: url, shape: shape)
        try writer.write(values)
        try writer.close()
    }
}
