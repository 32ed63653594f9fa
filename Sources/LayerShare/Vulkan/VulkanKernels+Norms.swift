import VulkanCompute

/// Row reductions: RMSNorm and softmax (Shaders/rmsnorm.comp, softmax.comp).
extension VulkanKernels {
    /// y[r, :] = x[r, :] · rsqrt(mean(x[r, :]²) + eps) · weight, rows of `dim` floats
    /// (strides default to dim). y may be x itself (same buffer and offset): then it is bound once.
    public func rmsnorm(_ batch: CommandBatch, x: DeviceBuffer, xOffset: Int = 0, weight: DeviceBuffer,
                        y: DeviceBuffer, yOffset: Int = 0, rows: Int, dim: Int, eps: Float,
                        xStride: Int? = nil, yStride: Int? = nil, label: String = "rmsnorm", group: String = "") throws {
        let what = "rmsnorm '\(label)'"
        try requirePositive(what, ["rows": rows, "dim": dim])
        let xs = xStride ?? dim, ys = yStride ?? dim
        guard xs >= dim, ys >= dim else { throw fail(what, "row strides must be at least dim \(dim)") }
        guard eps >= 0, eps.isFinite else { throw fail(what, "eps must be finite and non-negative, got \(eps)") }
        try requireFloats(what, "x", x, offset: xOffset, span: (rows - 1) * xs + dim)
        try requireFloats(what, "weight", weight, offset: 0, span: dim)
        try requireFloats(what, "y", y, offset: yOffset, span: (rows - 1) * ys + dim)
        let inPlace = x === y
        if inPlace, xOffset != yOffset || xs != ys {
            throw fail(what, "x and y share buffer '\(x.label)' but not the same offset and stride (only exact in-place is supported)")
        }
        let p = try pipeline("rmsnorm.comp", defines: inPlace ? ["IN_PLACE": "1"] : [:],
                             specialization: [Self.u(tuning.reduceWorkgroup)], bindings: inPlace ? 2 : 3, pushWords: 7)
        let bindings: [BufferBinding] = inPlace ? [.readWrite(x), .read(weight)] : [.read(x), .read(weight), .write(y)]
        try batch.dispatch(p, bindings,
                           push: [Self.u(dim), Self.u(rows), .float(eps), Self.u(xOffset), Self.u(xs), Self.u(yOffset), Self.u(ys)],
                           groups: try folded(rows, what), label: label, group: group)
    }

    /// In place, per head: `heads` consecutive heads of `headDim` floats from element `offset` of each
    /// of `rows` rows `rowStride` floats apart, each RMS-normalised and times `weight` [headDim].
    public func headRmsnorm(_ batch: CommandBatch, x: DeviceBuffer, offset: Int, weight: DeviceBuffer, rows: Int, rowStride: Int,
                            heads: Int, headDim: Int, eps: Float, label: String = "head_norm", group: String = "") throws {
        let what = "head rmsnorm '\(label)'"
        try requirePositive(what, ["rows": rows, "heads": heads, "headDim": headDim])
        guard offset >= 0, offset + heads * headDim <= rowStride else {
            throw fail(what, "\(heads) heads of \(headDim) from column \(offset) do not fit rows of \(rowStride)")
        }
        guard eps >= 0, eps.isFinite else { throw fail(what, "eps must be finite and non-negative, got \(eps)") }
        try requireFloats(what, "x", x, offset: offset, span: (rows - 1) * rowStride + heads * headDim)
        try requireFloats(what, "weight", weight, offset: 0, span: headDim)
        let p = try pipeline("rmsnorm.comp", defines: ["IN_PLACE": "1", "HEADS": "1"],
                             specialization: [Self.u(tuning.reduceWorkgroup)], bindings: 2, pushWords: 8)
        try batch.dispatch(p, [.readWrite(x), .read(weight)],
                           push: [Self.u(headDim), Self.u(rows * heads), .float(eps), Self.u(offset), Self.u(rowStride),
                                  Self.u(offset), Self.u(rowStride), Self.u(heads)],
                           groups: try folded(rows * heads, what), label: label, group: group)
    }

    /// In-place softmax of each row of `cols` floats: row r at `offset + r·stride` (stride defaults to cols).
    public func softmax(_ batch: CommandBatch, x: DeviceBuffer, offset: Int = 0, rows: Int, cols: Int, stride: Int? = nil,
                        label: String = "softmax", group: String = "") throws {
        let what = "softmax '\(label)'"
        try requirePositive(what, ["rows": rows, "cols": cols])
        let s = stride ?? cols
        guard s >= cols else { throw fail(what, "row stride \(s) is shorter than cols \(cols)") }
        try requireFloats(what, "x", x, offset: offset, span: (rows - 1) * s + cols)
        let p = try pipeline("softmax.comp", specialization: [Self.u(tuning.reduceWorkgroup)], bindings: 1, pushWords: 4)
        try batch.dispatch(p, [.readWrite(x)], push: [Self.u(cols), Self.u(rows), Self.u(offset), Self.u(s)],
                           groups: try folded(rows, what), label: label, group: group)
    }
}
