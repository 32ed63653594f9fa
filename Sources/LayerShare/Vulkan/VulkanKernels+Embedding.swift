import VulkanCompute

/// Embedding rows (Shaders/embedding.comp), the GPU's dequantization path.
extension VulkanKernels {
    /// out[r, :] = dequantized row tokens[r] of `table` for r < rows (token ids are uint32 at
    /// `tokenOffset`; out row r at `outOffset + r·outStride`, stride defaults to table.cols).
    /// Ids ≥ table.rows produce a NaN row and never address the table.
    public func embedding(_ batch: CommandBatch, table: VulkanMatrix, tokens: DeviceBuffer, tokenOffset: Int = 0,
                          out: DeviceBuffer, outOffset: Int = 0, rows: Int, outStride: Int? = nil,
                          label: String = "embedding", group: String = "") throws {
        let what = "embedding '\(label)' (\(table.label) \(table.type) [\(table.rows)×\(table.cols)])"
        try requirePositive(what, ["rows": rows])
        let cols = table.cols
        let os = outStride ?? cols
        guard os >= cols else { throw fail(what, "out row stride \(os) is shorter than the \(cols) table columns") }
        try requireFloats(what, "tokens", tokens, offset: tokenOffset, span: rows)  // uint32: same size as floats
        try requireFloats(what, "out", out, offset: outOffset, span: (rows - 1) * os + cols)
        let wg = tuning.elementwiseWorkgroup
        let p = try pipeline("embedding.comp", defines: try Self.weightDefines(table),
                             specialization: [Self.u(wg)], bindings: 3, pushWords: 6)
        let perRow = table.type.isQuantized ? cols / 32 : cols  // invocations per row: a block each, or an element each
        let (_, maxY, maxZ) = device.info.maxWorkgroupCount
        let gy = min(rows, maxY), gz = (rows + maxY - 1) / maxY
        let gx = (perRow + wg - 1) / wg
        guard gx <= device.info.maxWorkgroupCount.0, gz <= maxZ else { throw fail(what, "grid exceeds the device's limits") }
        try batch.dispatch(p, [.read(table.buffer), .read(tokens), .write(out)],
                           push: [Self.u(cols), Self.u(table.rows), Self.u(rows), Self.u(tokenOffset), Self.u(outOffset), Self.u(os)],
                           groups: (gx, gy, gz), label: label, group: group)
    }
}
