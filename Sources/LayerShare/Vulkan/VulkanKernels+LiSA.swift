import VulkanCompute

/// LiSA attention ("LiSA (LayerShare formulation)") and the log-probability rows a standard layer
/// hands to a LiSA layer (Shaders/lisa.comp). Logit and log-probability tensors are [rows, heads,
/// stride] floats (`LiSAScores`); row i is at position startPosition + i and defines keys
/// 0 ... startPosition + i. Each call is two dispatches: a pass over (row, key) pairs writing the
/// logits of every head, then one workgroup per (row, head) for the row's log-sum-exp, the
/// normalisation in place and, for a LiSA layer, P·V.
extension VulkanKernels {
    /// Most query heads a LiSA layer may have: the logits pass keeps two values per head in registers.
    public static let lisaMaxHeads = 64
    /// Longest head row the rows pass accepts (its P·V keeps ⌈headDim / workgroup⌉ sums per invocation).
    public static let lisaMaxHeadDim = 1024

    /// The shapes of one LiSA-family call.
    public struct LiSACall {
        public var rows: Int, startPosition: Int
        public var heads: Int, kvHeads: Int, headDim: Int
        /// Row stride of the logit / log-probability tensors (≥ startPosition + rows).
        public var stride: Int
        public init(rows: Int, startPosition: Int, heads: Int, kvHeads: Int, headDim: Int, stride: Int) {
            self.rows = rows; self.startPosition = startPosition
            self.heads = heads; self.kvHeads = kvHeads; self.headDim = headDim; self.stride = stride
        }
        public var context: Int { startPosition + rows }
        /// Floats of a [rows, heads, stride] tensor.
        var logitFloats: Int { rows * heads * stride }
    }

    /// A standard layer's log P for a LiSA layer: z[i, h, j] = scale · q[i, h]·k[j, h / group] minus
    /// its row's log-sum-exp. q [rows, heads, headDim] (rotated), k the K cache [≥ context, kvHeads,
    /// headDim]. (The layer's attention output comes from the attention kernels as usual.)
    public func lisaLogProbabilities(_ batch: CommandBatch, q: DeviceBuffer, k: DeviceBuffer, into z: DeviceBuffer, _ c: LiSACall,
                                     scale: Float, label: String = "log_probabilities", group: String = "") throws {
        let what = "log-probabilities '\(label)'"
        try checkLiSA(what, c)
        guard c.headDim % 4 == 0 else { throw fail(what, "head dim \(c.headDim) must be a multiple of 4") }
        guard scale.isFinite else { throw fail(what, "scale must be finite, got \(scale)") }
        let qFloats = c.rows * c.heads * c.headDim, kFloats = c.context * c.kvHeads * c.headDim
        try requireFloats(what, "Q", q, offset: 0, span: qFloats)
        try requireFloats(what, "K cache", k, offset: 0, span: kFloats)
        try requireFloats(what, "log-probabilities", z, offset: 0, span: c.logitFloats)
        try requireDistinct(what, z, from: ["Q": q, "K cache": k])
        let wg = tuning.elementwiseWorkgroup
        var defines = ["LISA_SCORES": "1", "HEAD_DIM": "\(c.headDim)", "WG_SIZE": "\(wg)"]
        var inputs: [BufferBinding] = [.read(q, range: qFloats * 4), .read(k, range: kFloats * 4)]
        if let qView = texelView(q, floats: qFloats), let kView = texelView(k, floats: kFloats) {
            defines["KV_TEXEL"] = "1"
            inputs = [.texels(qView), .texels(kView)]
        }
        let kind: DescriptorKind = defines["KV_TEXEL"] == nil ? .storageBuffer : .uniformTexelBuffer
        let scores = try lisaPipeline(what, defines, bindings: [kind, kind, .storageBuffer])
        try batch.dispatch(scores, inputs + [.write(z, range: c.logitFloats * 4)],
                           push: lisaPush(c, scale: scale), groups: try lisaKeyGrid(what, c, workgroup: wg), label: label + ".scores", group: group)
        try lisaRows(batch, z: z, values: nil, c, emit: true, what: what, label: label, group: group)
    }

    /// The low-rank part of a LiSA layer, nil at rank 0: rotated q_r [rows, heads, rank] and the
    /// low-rank K cache [≥ context, kvHeads, rank].
    public struct LiSALowRank {
        public var queries: DeviceBuffer, keys: DeviceBuffer, rank: Int, scale: Float
        public init(queries: DeviceBuffer, keys: DeviceBuffer, rank: Int, scale: Float) {
            self.queries = queries; self.keys = keys; self.rank = rank; self.scale = scale
        }
    }

    /// A LiSA layer's attention: logits from the previous layer's log P (`previous`) through the
    /// head-alignment FFN (`alignment`: `LiSALayerParameters.alignmentTable`, ffnWidth may be 0) plus
    /// the low-rank term, into `logits`; then out [rows, heads, headDim] = softmax(logits)·V
    /// (`values`: the V cache), and with `emit` log P left in `logits` for the next LiSA layer.
    public func lisaAttention(_ batch: CommandBatch, previous: DeviceBuffer, alignment: DeviceBuffer, ffnWidth: Int,
                              lowRank: LiSALowRank?, values: DeviceBuffer, out: DeviceBuffer, logits: DeviceBuffer, emit: Bool,
                              _ c: LiSACall, label: String = "lisa_attention", group: String = "") throws {
        let what = "LiSA attention '\(label)'"
        try checkLiSA(what, c)
        guard c.heads <= Self.lisaMaxHeads else {
            throw fail(what, "\(c.heads) heads exceed the \(Self.lisaMaxHeads) the LiSA logits kernel keeps in registers")
        }
        guard ffnWidth >= 0, ffnWidth <= 4096 else { throw fail(what, "FFN width \(ffnWidth) is outside 0...4096") }
        let tableFloats = LiSALayerParameters.alignmentTableCount(heads: c.heads, ffnWidth: ffnWidth)
        try requireFloats(what, "previous log-probabilities", previous, offset: 0, span: c.logitFloats)
        try requireFloats(what, "alignment table", alignment, offset: 0, span: tableFloats)
        try requireFloats(what, "logits", logits, offset: 0, span: c.logitFloats)
        try requireDistinct(what, logits, from: ["previous log-probabilities": previous, "alignment table": alignment])
        var bindings: [BufferBinding] = [.read(previous, range: c.logitFloats * 4), .read(alignment, range: tableFloats * 4)]
        if let r = lowRank {
            guard r.rank > 0, r.rank % 2 == 0, r.rank <= 4096 else { throw fail(what, "rank \(r.rank) must be even and in 2...4096") }
            guard r.scale.isFinite else { throw fail(what, "low-rank scale must be finite, got \(r.scale)") }
            let qFloats = c.rows * c.heads * r.rank, kFloats = c.context * c.kvHeads * r.rank
            try requireFloats(what, "low-rank queries", r.queries, offset: 0, span: qFloats)
            try requireFloats(what, "low-rank key cache", r.keys, offset: 0, span: kFloats)
            try requireDistinct(what, logits, from: ["low-rank queries": r.queries, "low-rank key cache": r.keys])
            bindings += [.read(r.queries, range: qFloats * 4), .read(r.keys, range: kFloats * 4)]
        } else {
            bindings += [.read(previous, range: c.logitFloats * 4), .read(previous, range: c.logitFloats * 4)]  // unread at rank 0
        }
        bindings.append(.write(logits, range: c.logitFloats * 4))
        let wg = tuning.elementwiseWorkgroup
        let pass = try lisaPipeline(what, ["LISA_LOGITS": "1", "HEADS": "\(c.heads)", "WG_SIZE": "\(wg)"],
                                    bindings: Array(repeating: .storageBuffer, count: 5))
        try batch.dispatch(pass, bindings, push: lisaPush(c, rank: lowRank?.rank ?? 0, ffnWidth: ffnWidth, scale: lowRank?.scale ?? 0),
                           groups: try lisaKeyGrid(what, c, workgroup: wg), label: label + ".logits", group: group)
        try lisaRows(batch, z: logits, values: (values, out), c, emit: emit, what: what, label: label, group: group)
    }

    /// The rows pass: log-sum-exp per (row, head), with `values` P·V into its output, with `emit`
    /// z − lse in place.
    private func lisaRows(_ batch: CommandBatch, z: DeviceBuffer, values: (v: DeviceBuffer, out: DeviceBuffer)?, _ c: LiSACall,
                          emit: Bool, what: String, label: String, group: String) throws {
        let wg = tuning.reduceWorkgroup
        var defines = ["LISA_ROWS": "1", "WG_SIZE": "\(wg)"]
        var bindings: [BufferBinding] = [emit ? .readWrite(z, range: c.logitFloats * 4) : .read(z, range: c.logitFloats * 4)]
        var kinds: [DescriptorKind] = [.storageBuffer]
        if let (v, out) = values {
            let vFloats = c.context * c.kvHeads * c.headDim, outFloats = c.rows * c.heads * c.headDim
            try requireFloats(what, "V cache", v, offset: 0, span: vFloats)
            try requireFloats(what, "output", out, offset: 0, span: outFloats)
            try requireDistinct(what, out, from: ["logits": z, "V cache": v])
            let view = c.headDim % 4 == 0 ? texelView(v, floats: vFloats) : nil
            let lanes = min(wg, view == nil ? c.headDim : c.headDim / 4)
            let sharedBytes = 4 * (2 * wg + wg / lanes * c.headDim)  // reduction, probabilities, partial sums
            guard sharedBytes <= device.info.maxSharedMemory else {
                throw fail(what, "head dim \(c.headDim) needs \(sharedBytes) bytes of shared memory, the device offers \(device.info.maxSharedMemory)")
            }
            defines["WITH_VALUES"] = "1"
            defines["HEAD_DIM"] = "\(c.headDim)"
            if view != nil { defines["KV_TEXEL"] = "1" }
            bindings += [view.map { .texels($0) } ?? .read(v, range: vFloats * 4), .write(out, range: outFloats * 4)]
            kinds += [view == nil ? .storageBuffer : .uniformTexelBuffer, .storageBuffer]
        }
        let pass = try lisaPipeline(what, defines, bindings: kinds)
        try batch.dispatch(pass, bindings, push: lisaPush(c, flags: emit ? 1 : 0), groups: try lisaRowGrid(what, c, x: c.heads),
                           label: label + ".rows", group: group)
    }

    /// The buffer's RGBA32F view if the attention kernels read caches as texels here (CPU drivers) and
    /// it covers `floats`; callers need head rows of whole texels.
    private func texelView(_ b: DeviceBuffer, floats: Int) -> TexelBufferView? {
        guard tuning.attentionTexelCaches else { return nil }
        return b.floatTexelView.flatMap { $0.range >= floats * 4 ? $0 : nil }
    }

    private func lisaPipeline(_ what: String, _ defines: [String: String], bindings: [DescriptorKind]) throws -> ComputePipeline {
        try pipeline("lisa.comp", defines: defines, specialization: [], bindings: bindings, pushWords: 9)
    }

    private func lisaPush(_ c: LiSACall, rank: Int = 0, ffnWidth: Int = 0, flags: UInt32 = 0, scale: Float = 0) -> [ShaderScalar] {
        [Self.u(c.rows), Self.u(c.startPosition), Self.u(c.heads), Self.u(c.kvHeads), Self.u(c.stride),
         Self.u(rank), Self.u(ffnWidth), .uint(flags), .float(scale)]
    }

    /// Blocks of `workgroup` keys over x, query rows over y (folded into z).
    private func lisaKeyGrid(_ what: String, _ c: LiSACall, workgroup: Int) throws -> (Int, Int, Int) {
        let blocks = (c.context + workgroup - 1) / workgroup
        guard blocks <= device.info.maxWorkgroupCount.0 else {
            throw fail(what, "a context of \(c.context) keys needs \(blocks) workgroups in x, the device allows \(device.info.maxWorkgroupCount.0)")
        }
        return try lisaRowGrid(what, c, x: blocks)
    }

    private func lisaRowGrid(_ what: String, _ c: LiSACall, x: Int) throws -> (Int, Int, Int) {
        let (maxX, maxY, maxZ) = device.info.maxWorkgroupCount
        let y = min(c.rows, maxY), z = (c.rows + y - 1) / y
        guard x <= maxX, z <= maxZ else { throw fail(what, "\(x) × \(c.rows) workgroups exceed the device's grid limits") }
        return (x, y, z)
    }

    /// Shape checks every LiSA-family call shares; all indices must fit the shaders' 32 bits.
    private func checkLiSA(_ what: String, _ c: LiSACall) throws {
        try requirePositive(what, ["rows": c.rows, "heads": c.heads, "kvHeads": c.kvHeads, "headDim": c.headDim, "stride": c.stride])
        guard c.heads % c.kvHeads == 0 else { throw fail(what, "heads \(c.heads) must be a multiple of kvHeads \(c.kvHeads)") }
        guard c.headDim <= Self.lisaMaxHeadDim else { throw fail(what, "head dim \(c.headDim) exceeds \(Self.lisaMaxHeadDim)") }
        guard c.startPosition >= 0, c.stride >= c.context else {
            throw fail(what, "rows of stride \(c.stride) cannot hold the \(c.context) keys of positions up to \(c.startPosition + c.rows - 1)")
        }
        let (perRow, o1) = c.heads.multipliedReportingOverflow(by: c.stride)
        let (total, o2) = perRow.multipliedReportingOverflow(by: c.rows)
        guard !o1, !o2, total <= Int(UInt32.max) else { throw fail(what, "\(c.rows) rows × \(c.heads) heads × \(c.stride) exceed 32-bit indexing") }
    }

    private func requireDistinct(_ what: String, _ output: DeviceBuffer, from inputs: KeyValuePairs<String, DeviceBuffer>) throws {
        if let same = inputs.first(where: { $0.value === output }) {
            throw fail(what, "the output buffer '\(output.label)' must not also be the \(same.key)")
        }
    }
}
