import ModelFormats
import VulkanCompute

/// Head-wise sharing on Vulkan: every distinct slice of the composed weights is uploaded once, into
/// one pool matrix per (type, row length); a composed matrix is a row-table view of its pool (rows
/// composed: Q|K|V), or column parts that are such views (columns composed: the output projection,
/// one product per part accumulating into the residual stream).
extension VulkanBackend {
    public func loadComposed(_ weights: [ComposedWeight]) throws -> [VulkanMatrix] {
        var pools: [PoolKey: SlicePool] = [:]
        for w in weights {
            for part in w.parts {
                let cols = w.axis == .rows ? part.tensor.cols : part.range.count
                let rows = w.axis == .rows ? part.range.count : part.tensor.rows
                pools[PoolKey(type: w.type, cols: cols), default: SlicePool()].add(part, axis: w.axis, rows: rows)
            }
        }
        var stored: [PoolKey: (matrix: VulkanMatrix, block: Int)] = [:]
        for (key, pool) in pools {
            let block = pool.block
            guard block % kernels.tuning.weightTileRows == 0 else {
                throw ModelLoadError("head-shared \(key.type) slices of \(pool.sliceRows.sorted()) rows do not fall on the device layout's "
                                     + "tiles of \(kernels.tuning.weightTileRows) rows")
            }
            let bytes = pool.slices.flatMap { ComposedWeight.sliceBytes($0.part, axis: $0.axis) }
            let matrix = try bytes.withUnsafeBytes {
                try VulkanMatrix(device: device, type: key.type, rows: pool.rows, cols: key.cols, bytes: $0,
                                 tileRows: kernels.tuning.weightTileRows,
                                 label: "head-shared \(key.type) slices of \(key.cols) columns (\(pool.slices.count) slices)")
            }
            weightBytes += matrix.buffer.byteCount
            stored[key] = (matrix, block)
        }
        return try weights.map { w in
            func view(_ parts: [ComposedWeight.Part], label: String) throws -> VulkanMatrix {
                let cols = w.axis == .rows ? parts[0].tensor.cols : parts[0].range.count
                let key = PoolKey(type: w.type, cols: cols)
                let (matrix, block) = stored[key]!
                let blocks = parts.flatMap { part -> Range<Int> in
                    let first = pools[key]!.firstRow[part.key(w.axis)]! / block
                    let count = (w.axis == .rows ? part.range.count : part.tensor.rows) / block
                    return first..<(first + count)
                }
                let v = try VulkanMatrix(rowsOf: matrix, blocks: blocks, block: block, label: label)
                weightBytes += v.rowTable!.buffer.byteCount
                return v
            }
            switch w.axis {
            case .rows:
                return try view(w.parts, label: w.label)
            case .columns:
                var first = 0
                let parts = try w.parts.enumerated().map { i, part -> VulkanMatrix.ColumnPart in
                    defer { first += part.range.count }
                    return .init(matrix: try view([part], label: "\(w.label) part \(i)"), firstColumn: first)
                }
                return try VulkanMatrix(columns: parts, label: w.label)
            }
        }
    }

    /// A product with a column-parts weight: one product per part over its columns of x, all
    /// accumulating into y (the first storing, for a plain store); only the last prepares the next norm.
    func columnPartsProduct(_ weight: VulkanMatrix, _ x: Tensor, rows: Int, input: FusedInput<VulkanMatrix>,
                            output: FusedOutput<Tensor, VulkanMatrix, Cache>, label: String) throws {
        guard case .plain = input else {
            throw ModelLoadError("\(label): a weight stored in column parts takes its input as it is (no fused norm)")
        }
        let parts = weight.columnParts
        for (i, part) in parts.enumerated() {
            let partOutput: FusedOutput<Tensor, VulkanMatrix, Cache>
            switch output {
            case let .store(y): partOutput = i == 0 ? .store(y) : .accumulate(y)
            case let .accumulate(y, next): partOutput = .accumulate(y, nextNorm: i == parts.count - 1 ? next : nil)
            case .swiglu, .geglu, .ropeIntoCache:
                throw ModelLoadError("\(label): a weight stored in column parts supports stored and accumulated outputs only")
            }
            try product(part.matrix, x, xColumns: (part.firstColumn, weight.cols), rows: rows, input: .plain, output: partOutput,
                        label: "\(label) part \(i)")
        }
    }

    /// A column part's product where the kernels cannot fuse its output: the product into y, or
    /// into scratch and then added to y.
    func separateColumnPartProduct(_ weight: VulkanMatrix, _ x: Tensor, xColumns: (offset: Int, stride: Int), rows: Int,
                                   output: FusedOutput<Tensor, VulkanMatrix, Cache>, label: String) throws {
        try ensureRecording()
        let name = "\(rows == 1 ? "matvec" : "matmul") \(weight.type) \(weight.cols)→\(weight.rows) (\(label))"
        switch output {
        case let .store(y):
            try kernels.matmul(batch, weight: weight, x: x.buffer, xOffset: xColumns.offset, y: y.buffer, rows: rows,
                               xStride: xColumns.stride, label: name, group: group)
        case let .accumulate(y, _):
            let wide = try scratch.tensor(1, count: rows * weight.rows, backend: self)
            try kernels.matmul(batch, weight: weight, x: x.buffer, xOffset: xColumns.offset, y: wide.buffer, rows: rows,
                               xStride: xColumns.stride, label: name, group: group)
            try kernels.add(batch, a: y.buffer, b: wide.buffer, out: y.buffer, count: rows * weight.rows, label: "add", group: group)
        case .swiglu, .geglu, .ropeIntoCache:
            throw ModelLoadError("\(label): a weight stored in column parts supports stored and accumulated outputs only")
        }
    }
}

/// Slices of one type and row length, stored back to back in one matrix.
private struct PoolKey: Hashable {
    let type: GGMLType
    let cols: Int
}

private struct SlicePool {
    var slices: [(part: ComposedWeight.Part, axis: ComposedWeight.Axis)] = []
    var firstRow: [ComposedWeight.SliceKey: Int] = [:]
    var sliceRows: Set<Int> = []
    var rows = 0

    /// Adds the slice unless the pool holds it already.
    mutating func add(_ part: ComposedWeight.Part, axis: ComposedWeight.Axis, rows count: Int) {
        let key = part.key(axis)
        guard firstRow[key] == nil else { return }
        firstRow[key] = rows
        slices.append((part, axis))
        sliceRows.insert(count)
        rows += count
    }

    /// Rows per table entry: the largest count every slice is a whole number of.
    var block: Int {
        func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
        return sliceRows.reduce(0, gcd)
    }
}
