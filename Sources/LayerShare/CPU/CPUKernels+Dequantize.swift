import Dispatch
import ModelFormats

extension CPUKernels {
    /// Gathers embedding rows: out[i, 0..<rowLength] = dequantized row `tokenIds[i]` of `table`
    /// ([vocabularySize, rowLength] in `type`'s encoding). Every id is checked before anything
    /// is written; an id outside 0..<vocabularySize throws `CPUKernelError.tokenOutOfRange`.
    public static func embedding(table: UnsafeRawPointer, type: GGMLType, rowLength: Int, vocabularySize: Int,
                                 tokenIds: [Int], into out: UnsafeMutablePointer<Float>) throws {
        guard let rowBytes = type.rowBytes(rowLength) else {
            preconditionFailure("embedding row length \(rowLength) is not a multiple of the \(type) block size")
        }
        for (index, id) in tokenIds.enumerated() where !(0..<vocabularySize).contains(id) {
            throw CPUKernelError.tokenOutOfRange(id: id, index: index, vocabularySize: vocabularySize)
        }
        for (index, id) in tokenIds.enumerated() {
            Dequantize.row(type, table + id * rowBytes, count: rowLength, into: out + index * rowLength)
        }
    }

    /// Dequantizes a [rows, cols] matrix (each row `type.rowBytes(cols)` bytes) into float32.
    public static func dequantizeMatrix(_ type: GGMLType, bytes: UnsafeRawBufferPointer, rows: Int, cols: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: rows * cols) { buffer, initialized in
            dequantizeMatrix(type, bytes: bytes, rows: rows, cols: cols, into: buffer.baseAddress!)
            initialized = rows * cols
        }
    }

    /// Dequantizes a [rows, cols] matrix into `out`. Rows are split into chunks that run
    /// concurrently: the scalar `Dequantize.row` is the bottleneck when loading a model.
    public static func dequantizeMatrix(_ type: GGMLType, bytes: UnsafeRawBufferPointer, rows: Int, cols: Int,
                                        into out: UnsafeMutablePointer<Float>) {
        guard let rowBytes = type.rowBytes(cols) else {
            preconditionFailure("row length \(cols) is not a multiple of the \(type) block size")
        }
        precondition(rows >= 0 && bytes.count >= rows * rowBytes,
                     "\(rows)×\(cols) \(type) needs \(rows * rowBytes) bytes, have \(bytes.count)")
        guard rows > 0, cols > 0, let base = bytes.baseAddress else { return }
        // Chunks of ≥ 64 KiB of output amortise the dispatch cost; small matrices run inline.
        let rowsPerChunk = max(1, (1 << 14) / cols)
        let chunks = (rows + rowsPerChunk - 1) / rowsPerChunk
        let work = { (chunk: Int) in
            for r in (chunk * rowsPerChunk)..<min(rows, (chunk + 1) * rowsPerChunk) {
                Dequantize.row(type, base + r * rowBytes, count: cols, into: out + r * cols)
            }
        }
        if chunks == 1 { work(0) } else { DispatchQueue.concurrentPerform(iterations: chunks, execute: work) }
    }
}
