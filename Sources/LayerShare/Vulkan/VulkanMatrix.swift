import Foundation
import ModelFormats
import VulkanCompute

/// A weight matrix on the GPU in its stored GGUF format (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K,
/// Q5_K, Q6_K), dequantized inside the shaders. F32/F16/BF16 rows are uploaded unchanged; quantized
/// blocks keep their bytes but are split into parts (`splitBlocks`: all quants, then all scales) so
/// shader reads are aligned, and stored in tiles of `tileRows` rows (see Shaders/quant.glsl).
///
/// A stored matrix must fit one storage-buffer binding (`maxStorageBufferRange`); a larger weight
/// is loaded as `rowParts`, consecutive row ranges each stored as its own matrix (Gemma's 178 MB
/// embedding table on lavapipe's 128 MiB bindings).
public final class VulkanMatrix {
    public let buffer: DeviceBuffer
    /// Element type as stored on the GPU.
    public let type: GGMLType
    public let rows: Int
    public let cols: Int
    /// Rows per tile of the block order (1 = row-major; see `splitBlocks`): quantized types, and
    /// float rows of whole 32-element blocks (`tileFloatBlocks`).
    public let tileRows: Int
    /// Bytes of matrix data (the buffer itself is slightly larger, see `paddedByteCount`).
    public let byteCount: Int
    public let label: String

    /// Quantized weights (and float ones with rows of whole 32-element blocks) as 16-byte texels
    /// (R32G32B32A32_UINT) for the texel-fetch products, made at upload when the device supports the
    /// format and the matrix fits maxTexelBufferElements;
    /// nil otherwise (the kernels then read `buffer` as a storage buffer).
    public let texelView: TexelBufferView?

    /// Set on a view whose rows are read from another matrix's buffer through a table (head-wise
    /// sharing; Shaders/quant.glsl `ROW_TABLE`).
    public let rowTable: RowTable?

    /// Logical row r of a view is stored row `blocks[r / block]·block + r % block` of a shared matrix
    /// of `storedRows` rows; `buffer` holds the table as 32-bit words.
    public struct RowTable {
        public let buffer: DeviceBuffer
        public let block: Int
        public let storedRows: Int
    }

    /// Set on a product weight whose columns are stored apart (head-wise sharing's output
    /// projection): W·x = Σ parts[i].matrix · (columns firstColumn ..< firstColumn + matrix.cols of x).
    /// Empty for every stored matrix.
    public let columnParts: [ColumnPart]

    /// Set on a weight stored as consecutive row ranges (too large for one binding): row
    /// firstRow + i of the weight is row i of `matrix`. Empty for every stored matrix.
    public let rowParts: [RowPart]

    public struct RowPart {
        public let matrix: VulkanMatrix
        public let firstRow: Int
    }

    public struct ColumnPart {
        public let matrix: VulkanMatrix
        public let firstColumn: Int
        public init(matrix: VulkanMatrix, firstColumn: Int) { self.matrix = matrix; self.firstColumn = firstColumn }
    }

    /// Zeroed bytes after the data; with the rounding to whole 16-byte texels every texel fetch of
    /// the last header word stays inside the buffer (and the view).
    static let tailPadding = 16

    /// Uploads `bytes`, the raw GGUF data of a row-major [rows][cols] matrix of `type`. Quantized
    /// blocks are stored in tiles of `tileRows` rows (a power of two; the kernels' tuning says
    /// which order reads fastest: `KernelTuning.weightTileRows`).
    public convenience init(device: VulkanDevice, type: GGMLType, rows: Int, cols: Int, bytes: UnsafeRawBufferPointer,
                            tileRows: Int = 1, label: String) throws {
        try self.init(device: device, type: type, rows: rows, cols: cols, source: .raw(bytes), tileRows: tileRows, label: label)
    }

    /// An F32 matrix from host floats (row-major [rows][cols]).
    public convenience init(device: VulkanDevice, values: [Float], rows: Int, cols: Int, label: String) throws {
        guard values.count == rows * cols else {
            throw VulkanError.invalidArgument("matrix '\(label)': \(values.count) values for shape [\(rows)×\(cols)]")
        }
        try self.init(device: device, type: .f32, rows: rows, cols: cols, source: .floats(values), tileRows: 1, label: label)
    }

    /// An F32 vector (e.g. a norm weight) as a 1×n matrix; use `buffer` where a kernel wants a vector.
    public convenience init(device: VulkanDevice, vector: [Float], label: String) throws {
        try self.init(device: device, values: vector, rows: 1, cols: vector.count, label: label)
    }

    /// A matrix of `blocks.count · block` rows read from `stored`'s buffer: logical row block i is
    /// stored block `blocks[i]` of `block` rows. Allocates only the table. `block` must be a multiple
    /// of the stored matrix's tile, so whole tiles are addressed.
    public init(rowsOf stored: VulkanMatrix, blocks: [Int], block: Int, label: String) throws {
        guard stored.rowTable == nil, stored.columnParts.isEmpty else {
            throw VulkanError.invalidArgument("matrix '\(label)': a row-table view must read a stored matrix, not another view")
        }
        guard block > 0, block % stored.tileRows == 0, stored.rows % block == 0, !blocks.isEmpty,
              blocks.allSatisfy({ $0 >= 0 && $0 < stored.rows / block }) else {
            throw VulkanError.invalidArgument("matrix '\(label)': row blocks \(blocks) of \(block) rows do not fit '\(stored.label)' "
                                              + "(\(stored.rows) rows in tiles of \(stored.tileRows))")
        }
        let table = try DeviceBuffer(device: stored.buffer.device, byteCount: blocks.count * 4, label: "\(label) row table")
        try table.upload(blocks.map { UInt32($0) })
        buffer = stored.buffer
        type = stored.type
        rows = blocks.count * block
        cols = stored.cols
        tileRows = stored.tileRows
        byteCount = 0
        self.label = label
        texelView = stored.texelView
        rowTable = RowTable(buffer: table, block: block, storedRows: stored.rows)
        columnParts = []
        rowParts = []
    }

    /// A product weight made of column parts stored apart, side by side in order (no allocation).
    public init(columns parts: [ColumnPart], label: String) throws {
        guard let first = parts.first?.matrix,
              parts.allSatisfy({ $0.matrix.rows == first.rows && $0.matrix.type == first.type && $0.matrix.columnParts.isEmpty }) else {
            throw VulkanError.invalidArgument("matrix '\(label)': column parts must be plain matrices of one type and row count")
        }
        var next = 0
        for part in parts {
            guard part.firstColumn == next else {
                throw VulkanError.invalidArgument("matrix '\(label)': column parts must follow each other (part at \(part.firstColumn), expected \(next))")
            }
            next += part.matrix.cols
        }
        buffer = first.buffer
        type = first.type
        rows = first.rows
        cols = next
        tileRows = first.tileRows
        byteCount = 0
        self.label = label
        texelView = nil
        rowTable = nil
        columnParts = parts
        rowParts = []
    }

    /// A weight made of consecutive row ranges of one row length (no allocation). The parts may differ
    /// in type (a stack of Q, K and V stored in different types); `type` is then the first part's.
    public init(rows parts: [VulkanMatrix], label: String) throws {
        guard let first = parts.first, parts.allSatisfy({ $0.cols == first.cols && $0.rowTable == nil
                && $0.columnParts.isEmpty && $0.rowParts.isEmpty }) else {
            throw VulkanError.invalidArgument("matrix '\(label)': row parts must be plain matrices of one row length")
        }
        var next = 0
        rowParts = parts.map { part in
            defer { next += part.rows }
            return RowPart(matrix: part, firstRow: next)
        }
        buffer = first.buffer
        type = first.type
        rows = next
        cols = first.cols
        tileRows = first.tileRows
        byteCount = parts.map(\.byteCount).reduce(0, +)
        self.label = label
        texelView = nil
        rowTable = nil
        columnParts = []
    }

    /// Bytes a stored matrix of `type` [rows×cols] takes in one binding (padded).
    static func storedBytes(type: GGMLType, rows: Int, cols: Int) -> Int? {
        guard let rowBytes = type.rowBytes(cols) else { return nil }
        let (bytes, overflow) = rowBytes.multipliedReportingOverflow(by: rows)
        return overflow ? nil : (bytes + tailPadding + 15) & ~15
    }

    private enum Source {
        case raw(UnsafeRawBufferPointer)
        case floats([Float])
    }

    private init(device: VulkanDevice, type: GGMLType, rows: Int, cols: Int, source: Source, tileRows: Int, label: String) throws {
        guard rows > 0, cols > 0 else {
            throw VulkanError.invalidArgument("matrix '\(label)': shape [\(rows)×\(cols)] must be positive")
        }
        guard tileRows > 0, tileRows & (tileRows - 1) == 0 else {
            throw VulkanError.invalidArgument("matrix '\(label)': tile of \(tileRows) rows is not a power of two")
        }
        guard let rowBytes = type.rowBytes(cols) else {
            throw VulkanError.invalidArgument("matrix '\(label)': \(type) rows need a multiple of \(type.blockSize) columns, got \(cols)")
        }
        let (sourceBytes, overflow) = rowBytes.multipliedReportingOverflow(by: rows)
        let count: Int
        switch source {
        case let .raw(b): count = b.count
        case let .floats(f): count = f.count * 4
        }
        guard !overflow, count == sourceBytes else {
            throw VulkanError.invalidArgument("matrix '\(label)': \(type) [\(rows)×\(cols)] takes \(sourceBytes) bytes, got \(count)")
        }
        let storedBytes = sourceBytes
        // Whole indices in the shaders are 32-bit element/word counts.
        let limit = device.info.maxStorageBufferRange
        let padded = (storedBytes + Self.tailPadding + 15) & ~15  // whole texels
        guard padded <= limit, padded < Int(UInt32.max) else {
            throw VulkanError.bufferTooLarge(label: "\(label) (\(type) [\(rows)×\(cols)]; matrices are not split across bindings)",
                                             bytes: padded, limit: limit, limitName: "maxStorageBufferRange")
        }
        self.type = type
        self.rows = rows
        self.cols = cols
        // Float rows of whole 32-element blocks are tiled like quantized blocks (float_blocks.glsl).
        self.tileRows = type.isQuantized || cols % 32 == 0 ? tileRows : 1
        self.byteCount = storedBytes
        self.label = label
        rowTable = nil
        columnParts = []
        rowParts = []
        let buffer = try DeviceBuffer(device: device, byteCount: padded, label: label)
        self.buffer = buffer

        switch source {
        case let .floats(values):
            try buffer.upload(values)
        case let .raw(bytes) where type.isQuantized:
            try Self.splitBlocks(type, bytes, rows: rows, tileRows: self.tileRows).withUnsafeBytes { try buffer.upload($0) }
        case let .raw(bytes) where self.tileRows > 1:
            try Self.tileFloatBlocks(bytes, rows: rows, blockBytes: 32 * type.bytesPerBlock, tileRows: self.tileRows)
                .withUnsafeBytes { try buffer.upload($0) }
        case let .raw(bytes):
            try buffer.upload(bytes)
        }
        let zeros = [UInt8](repeating: 0, count: padded - storedBytes)
        try buffer.upload(zeros, at: storedBytes)
        // Float rows of whole 32-element blocks get one too: matmul_lanes.comp reads them in blocks.
        if type.isQuantized || cols % 32 == 0, device.supportsUniformTexelBuffer(.rgba32Uint),
           padded / 16 <= device.info.maxTexelBufferElements {
            texelView = try TexelBufferView(buffer: buffer, format: .rgba32Uint)
        } else {
            texelView = nil
        }
    }

    /// The device layout of quantized blocks (Shaders/quant.glsl): GGUF's blocks of header [+ high
    /// bits] + quants (18 to 34 bytes) straddle 4- and 16-byte boundaries; here the quant bytes of all
    /// blocks come first (16 or 32 per block, so each block is whole texels), then Q5's 4-byte high
    /// bits, then the headers (Q4_1/Q5_1's 4-byte d,m; Q4_0's, Q5_0's and Q8_0's 2-byte d), each
    /// part in the stored block order. Same bytes, same size. The K-quants: VulkanMatrix+KQuants.swift.
    ///
    /// Stored block order: the rows are cut into tiles of `tileRows` (the last may be shorter) and
    /// each tile is stored block column by block column — block b of all its rows, then block b+1.
    /// `tileRows` = 1 is GGUF's row-major order.
    static func splitBlocks(_ type: GGMLType, _ raw: UnsafeRawBufferPointer, rows: Int, tileRows: Int) -> [UInt8] {
        if type.isKQuant { return splitKQuantBlocks(type, raw, rows: rows, tileRows: tileRows) }
        let blockBytes = type.bytesPerBlock
        let headerBytes = type == .q4_1 || type == .q5_1 ? 4 : 2  // GGUF: the header comes first,
        let highBytes = type == .q5_0 || type == .q5_1 ? 4 : 0    // then Q5's high bits, then quants
        let quantBytes = blockBytes - headerBytes - highBytes
        let blocks = raw.count / blockBytes
        let perRow = blocks / rows
        var out = [UInt8](repeating: 0, count: blocks * blockBytes)
        out.withUnsafeMutableBytes { dst in
            let highs = blocks * quantBytes, headers = highs + blocks * highBytes
            forEachInStoredOrder(rows: rows, blocksPerRow: perRow, tileRows: tileRows) { source, stored in
                let block = raw.baseAddress! + source * blockBytes
                (dst.baseAddress! + headers + stored * headerBytes).copyMemory(from: block, byteCount: headerBytes)
                if highBytes > 0 {
                    (dst.baseAddress! + highs + stored * highBytes).copyMemory(from: block + headerBytes, byteCount: highBytes)
                }
                (dst.baseAddress! + stored * quantBytes).copyMemory(from: block + headerBytes + highBytes, byteCount: quantBytes)
            }
        }
        return out
    }

    /// Float rows of whole 32-element blocks (`blockBytes` each) in the stored block order of
    /// Shaders/float_blocks.glsl (`forEachInStoredOrder`, as `splitBlocks` orders quantized blocks, without splitting).
    static func tileFloatBlocks(_ raw: UnsafeRawBufferPointer, rows: Int, blockBytes: Int, tileRows: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: raw.count)
        out.withUnsafeMutableBytes { dst in
            forEachInStoredOrder(rows: rows, blocksPerRow: raw.count / rows / blockBytes, tileRows: tileRows) { source, stored in
                (dst.baseAddress! + stored * blockBytes).copyMemory(from: raw.baseAddress! + source * blockBytes, byteCount: blockBytes)
            }
        }
        return out
    }

    /// Calls `body(source, stored)` for every block of a row-major [rows][blocksPerRow] matrix, in the
    /// stored block order: tiles of `tileRows` rows (the last may be shorter), each block column by
    /// block column. `source` is the block's row-major index, `stored` its position in that order.
    static func forEachInStoredOrder(rows: Int, blocksPerRow: Int, tileRows: Int, _ body: (_ source: Int, _ stored: Int) -> Void) {
        var stored = 0
        for t0 in stride(from: 0, to: rows, by: tileRows) {
            for b in 0..<blocksPerRow {
                for row in t0..<min(t0 + tileRows, rows) {
                    body(row * blocksPerRow + b, stored)
                    stored += 1
                }
            }
        }
    }

    /// Bytes allocated (data plus tail padding).
    public var paddedByteCount: Int { buffer.byteCount }
}
