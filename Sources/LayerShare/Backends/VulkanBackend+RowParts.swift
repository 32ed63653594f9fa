import ModelFormats
import VulkanCompute

/// Weights too large for one storage-buffer binding (Gemma-3's 262 144-row embedding table, which is
/// also its tied output projection), and stacks of parts in different types, are stored as
/// consecutive row ranges: the product writes each range's disjoint block of output columns, and the
/// embedding gathers each run of tokens from the range holding it.
extension VulkanBackend {
    /// The largest binding a matrix may take on this device (read from its limits).
    var matrixBindingLimit: Int {
        let info = device.info
        return min(info.maxStorageBufferRange, info.maxMemoryAllocationSize > 0 ? info.maxMemoryAllocationSize : Int.max)
    }

    /// `weight` as one matrix, or as row parts where it does not fit one binding.
    func uploadMatrix(_ weight: WeightTensor) throws -> VulkanMatrix {
        let tile = kernels.tuning.weightTileRows
        guard let whole = VulkanMatrix.storedBytes(type: weight.type, rows: weight.rows, cols: weight.cols),
              whole > matrixBindingLimit, let oneRow = VulkanMatrix.storedBytes(type: weight.type, rows: tile, cols: weight.cols) else {
            return try VulkanMatrix(device: device, type: weight.type, rows: weight.rows, cols: weight.cols, bytes: weight.data,
                                    tileRows: tile, label: weight.name)
        }
        // Whole tiles per part, as many as fit the binding.
        let tilesPerPart = max(1, matrixBindingLimit / oneRow - 1)
        let rowsPerPart = tilesPerPart * tile
        guard let rowBytes = weight.type.rowBytes(weight.cols) else {
            throw ModelLoadError("\(weight.name): \(weight.type) rows need a multiple of \(weight.type.blockSize) columns")
        }
        var parts: [VulkanMatrix] = []
        for first in stride(from: 0, to: weight.rows, by: rowsPerPart) {
            let n = min(rowsPerPart, weight.rows - first)
            let bytes = UnsafeRawBufferPointer(rebasing: weight.data[(first * rowBytes)..<((first + n) * rowBytes)])
            parts.append(try VulkanMatrix(device: device, type: weight.type, rows: n, cols: weight.cols, bytes: bytes, tileRows: tile,
                                          label: "\(weight.name) rows \(first)..<\(first + n)"))
        }
        return try VulkanMatrix(rows: parts, label: weight.name)
    }

    /// y = W·x (or W·rmsnorm(x)) for a weight in row parts: part i writes columns firstRow ..< firstRow + rows of y.
    /// Where every part's kernel can fuse the norm, each part reads rmsnorm(x) itself (no separate
    /// norm dispatch); other outputs than a store (a mixed-type Q|K|V's RoPE, gate|up's GLU) are
    /// the product into scratch followed by the separate ops.
    func rowPartsProduct(_ weight: VulkanMatrix, _ x: Tensor, rows: Int, input: FusedInput<VulkanMatrix>,
                         output: FusedOutput<Tensor, VulkanMatrix, Cache>, label: String) throws {
        guard case let .store(y) = output else {
            return try unfusedProduct(weight, x, rows: rows, input: input, output: output, label: label, scratch: scratch)
        }
        let stored = VulkanKernels.ProductOutput.store(y.buffer)
        var source = x
        var partInput = VulkanKernels.ProductInput.plain
        if case let .rmsNorm(norm, eps) = input {
            if weight.rowParts.allSatisfy({ kernels.canFuse(weight: $0.matrix, rows: rows, output: stored) }) {
                partInput = .rmsNorm(.weight(norm.buffer), eps: eps)
            } else {
                source = try scratch.tensor(0, count: rows * weight.cols, backend: self)
                try rmsnorm(x, weight: norm, into: source, rows: rows, dim: weight.cols, eps: eps)
            }
        }
        try ensureRecording()
        for part in weight.rowParts {
            let m = part.matrix
            if profiling {
                batch.setCost(bytes: Double(m.byteCount + rows * (m.cols + m.rows) * 4), flops: 2 * Double(rows) * Double(m.rows) * Double(m.cols))
            }
            let fused = partInput.isPlain ? "" : " + norm"
            try kernels.product(batch, weight: m, x: source.buffer, rows: rows, input: partInput, output: stored,
                                yOffset: part.firstRow, yStride: weight.rows,
                                label: "\(rows == 1 ? "matvec" : "matmul") \(m.type) \(m.cols)→\(m.rows) (\(label) rows \(part.firstRow)+\(fused))",
                                group: group)
        }
    }

    /// Embedding rows from a table in row parts: each run of consecutive tokens in one part is one
    /// gather, reading part-local ids from the token buffer.
    func rowPartsEmbed(_ table: VulkanMatrix, tokens: [Int], into out: Tensor) throws {
        let partOf: (Int) -> Int = { id in table.rowParts.lastIndex { $0.firstRow <= id }! }
        var local = [UInt32](repeating: 0, count: tokens.count)
        for (i, id) in tokens.enumerated() {
            guard (0..<table.rows).contains(id) else {
                throw ModelLoadError("token id \(id) at index \(i) is outside the embedding table 0..<\(table.rows)")
            }
            local[i] = UInt32(id - table.rowParts[partOf(id)].firstRow)
        }
        try uploadTokens(local)
        var start = 0
        while start < tokens.count {
            let p = partOf(tokens[start])
            var end = start + 1
            while end < tokens.count, partOf(tokens[end]) == p { end += 1 }
            let part = table.rowParts[p].matrix
            try kernels.embedding(batch, table: part, tokens: tokenBuffer!, tokenOffset: start, out: out.buffer,
                                  outOffset: start * table.cols, rows: end - start, label: "embedding \(part.type)", group: group)
            start = end
        }
    }
}
