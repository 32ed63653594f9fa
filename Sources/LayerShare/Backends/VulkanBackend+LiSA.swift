import VulkanCompute

/// LiSA on Vulkan: the log-probability rows a standard layer emits for the LiSA layer after it, and
/// LiSA layers' attention (VulkanKernels+LiSA.swift, Shaders/lisa.comp).
extension VulkanBackend {
    /// log P of every query row of a standard layer's call into `logs` (its attention output was
    /// recorded already): its scores recomputed from Q and the K cache, normalised per row.
    func emitLogProbabilities(_ op: AttentionOp<Tensor, Cache>, queries: Tensor, keys: DeviceBuffer,
                              into logs: (tensor: Tensor, stride: Int)) throws {
        let s = op.shape
        guard op.window == nil else { throw ModelLoadError("attention: log-probabilities for LiSA cannot come from a sliding-window layer") }
        let call = VulkanKernels.LiSACall(rows: op.rows, startPosition: op.startPosition, heads: s.heads, kvHeads: s.kvHeads,
                                          headDim: s.headDim, stride: logs.stride)
        try requireFloats(logs.tensor, call.logitFloats, "log-probabilities")
        try ensureRecording()
        let pairs = visiblePairs(op)
        batch.setCost(bytes: (Double(op.context * s.kvHeads * s.headDim + op.rows * s.queryRow) + 3 * pairs * Double(s.heads)) * 4,
                      flops: 2 * pairs * Double(s.queryRow))
        try kernels.lisaLogProbabilities(batch, q: queries.buffer, k: keys, into: logs.tensor.buffer, call,
                                         scale: op.scale ?? 1 / Float(s.headDim).squareRoot(), group: group)
    }

    /// A LiSA layer's attention: logits into its emission tensor (or the workspace), P·V into the output.
    func lisaAttention(_ op: AttentionOp<Tensor, Cache>, _ l: LiSAScores<Tensor, Cache>, values: DeviceBuffer) throws {
        if case .probabilities = op.emit { throw ModelLoadError("attention: a LiSA layer cannot be a Shared Attention source") }
        let s = op.shape
        let logs = op.emittedLogProbabilities
        if let logs, logs.stride != l.stride {
            throw ModelLoadError("attention: LiSA input rows (stride \(l.stride)) and emitted rows (stride \(logs.stride)) must share one stride")
        }
        let call = VulkanKernels.LiSACall(rows: op.rows, startPosition: op.startPosition, heads: s.heads, kvHeads: s.kvHeads,
                                          headDim: s.headDim, stride: l.stride)
        let target = logs?.tensor ?? l.workspace
        try requireFloats(l.previous, call.logitFloats, "LiSA previous log-probabilities")
        try requireFloats(target, call.logitFloats, "LiSA logits")
        try requireFloats(op.out, op.rows * s.queryRow, "attention output")
        var lowRank: VulkanKernels.LiSALowRank?
        if l.rank > 0 {
            let (keys, keyRow) = try l.keys.stream(.lowRankKeys, "LiSA low-rank keys")
            guard keyRow == s.kvHeads * l.rank else {
                throw ModelLoadError("attention: LiSA low-rank key rows hold \(keyRow) floats, expected \(s.kvHeads) × rank \(l.rank)")
            }
            try requireFloats(l.queries, op.rows * s.heads * l.rank, "LiSA low-rank queries")
            lowRank = .init(queries: l.queries.buffer, keys: keys, rank: l.rank, scale: l.lowRankScale)
        }
        try ensureRecording()
        let pairs = visiblePairs(op)
        let f = Double(l.ffnWidth), h = Double(s.heads)
        batch.setCost(bytes: (Double(op.context * s.kvHeads * (s.headDim + l.rank)) + 5 * pairs * h) * 4,
                      flops: 2 * pairs * (h * h + 2 * h * f + h * Double(l.rank) + h * Double(s.headDim)))
        try kernels.lisaAttention(batch, previous: l.previous.buffer, alignment: l.alignment.buffer, ffnWidth: l.ffnWidth, lowRank: lowRank,
                                  values: values, out: op.out.buffer, logits: target.buffer, emit: logs != nil, call, group: group)
    }

    /// (query, key) pairs of a causal call: row i sees startPosition + i + 1 keys.
    private func visiblePairs(_ op: AttentionOp<Tensor, Cache>) -> Double {
        Double(op.rows) * Double(op.startPosition) + Double(op.rows) * Double(op.rows + 1) / 2
    }

    private func requireFloats(_ t: Tensor, _ count: Int, _ what: String) throws {
        guard count <= t.count else { throw ModelLoadError("attention: \(what) tensor holds \(t.count) floats, the call needs \(count)") }
    }
}
