import ModelFormats

/// What the LiSA layers of a forward hold: per LiSA layer its low-rank projection, alignment table
/// and rotation frequencies on the backend; for the step, the low-rank rows and two log-probability
/// tensors used in turn (layer l writes the one layer l + 1 reads).
struct LiSAState<Backend: InferenceBackend> {
    struct Layer {
        let parameters: LiSALayerParameters
        /// [Wqr; Wkr] stacked ((heads + kvHeads)·rank rows); nil at rank 0.
        let lowRank: Backend.Weight?
        let alignment: Backend.Tensor
        let frequencies: Backend.Tensor?
    }

    let layers: [Int: Layer]
    /// [rows, heads, capacity] each: layer l's log-probabilities go to logs[l % 2].
    let logs: [Backend.Tensor]
    /// [rows, (heads + kvHeads)·rank], and the split-off rotated q_r and k_r rows.
    let lowRankRows: Backend.Tensor?, queries: Backend.Tensor?, keys: Backend.Tensor?

    /// Rows of one prefill chunk the log-probability tensors allow: each holds rows × heads ×
    /// capacity floats, kept under the backend's buffer limit and 64 MiB.
    static func chunkLimit(heads: Int, capacity: Int, maxTensorBytes: Int) throws -> Int {
        let (perRow, overflow) = capacity.multipliedReportingOverflow(by: heads * 4)
        let budget = min(maxTensorBytes, LiSABufferLimit.bytes)
        guard !overflow, perRow <= budget else {
            throw ModelLoadError("LiSA log-probability rows of \(heads) heads × \(capacity) positions exceed the backend's buffer limit "
                                 + "(\(formatBytes(budget))): lower --ctx")
        }
        return budget / perRow
    }

    init(specs: [LayerSpec], hyper h: LlamaHyperParameters, backend: Backend, capacity: Int, rows: Int) throws {
        var layers: [Int: Layer] = [:]
        var maxRank = 0
        for (l, spec) in specs.enumerated() {
            guard let p = spec.scores.lisaParameters else { continue }
            maxRank = max(maxRank, p.rank)
            let lowRank = p.rank > 0 ? try backend.loadWeight(.float32(name: "blk.\(l).lisa_lowrank", rows: (h.heads + h.kvHeads) * p.rank,
                                                                       cols: h.hiddenSize, values: p.lowRankRows)) : nil
            layers[l] = Layer(parameters: p, lowRank: lowRank,
                              alignment: try backend.makeTensor(p.alignmentTable, label: "blk.\(l).lisa_alignment"),
                              frequencies: p.rank > 0 ? try backend.makeTensor(p.ropeFrequencies, label: "blk.\(l).lisa_rope_freqs") : nil)
        }
        self.layers = layers
        let needsLogs = specs.contains { $0.emitsLogProbabilities }
        logs = needsLogs ? try (0..<2).map { try backend.makeTensor(rows * h.heads * capacity, label: "log-probabilities \($0)") } : []
        if maxRank > 0 {
            lowRankRows = try backend.makeTensor(rows * (h.heads + h.kvHeads) * maxRank, label: "lisa low-rank rows")
            queries = try backend.makeTensor(rows * h.heads * maxRank, label: "lisa q_r")
            keys = try backend.makeTensor(rows * h.kvHeads * maxRank, label: "lisa k_r")
        } else {
            lowRankRows = nil; queries = nil; keys = nil
        }
    }
}

/// The most bytes one log-probability tensor of a LiSA forward takes (its prefill chunk is cut to fit).
enum LiSABufferLimit {
    static let bytes = 64 << 20
}

extension WeightTensor {
    /// A float32 vector owning a copy of `values`.
    static func float32(name: String, values: [Float]) -> WeightTensor {
        let storage = OwnedBytes(values.withUnsafeBytes { Array($0) })
        return WeightTensor(name: name, type: .f32, shape: [values.count], data: storage.buffer, owner: storage)
    }

    /// A float32 matrix [rows, cols] owning a copy of `values`.
    static func float32(name: String, rows: Int, cols: Int, values: [Float]) -> WeightTensor {
        precondition(values.count == rows * cols)
        let storage = OwnedBytes(values.withUnsafeBytes { Array($0) })
        return WeightTensor(name: name, type: .f32, shape: [cols, rows], data: storage.buffer, owner: storage)
    }
}

extension Transformer {
    /// A LiSA layer's projections for this step: V into the cache; [q_r | k_r] from the normed input,
    /// rotated at the layer's selected frequencies, k_r into the cache. Returns its score source.
    func lisaScores(layer l: Int, weights w: LayerWeights, cache: Backend.Cache, rows n: Int, startPosition start: Int,
                    input: FusedInput<Backend.Weight>) throws -> AttentionScores<Backend.Tensor, Backend.Cache> {
        let h = hyper
        guard let state = lisa.layers[l] else { throw ModelLoadError("internal: layer \(l) has no LiSA state") }
        let p = state.parameters
        try backend.product(w.attnInput, x, rows: n, input: input, output: .store(v), label: "attn_v")
        if let bias = w.inputBias { try backend.addBias(v, bias: bias, rows: n) }
        try backend.store(v, offset: 0, into: .values, of: cache, rows: n, startPosition: start)
        if let lowRank = state.lowRank, let frequencies = state.frequencies, let rows = lisa.lowRankRows,
           let queries = lisa.queries, let keys = lisa.keys {
            let rowSize = p.lowRankRowSize, qSize = h.heads * p.rank
            try backend.product(lowRank, x, rows: n, input: input, output: .store(rows), label: "attn_lowrank")
            try backend.rotatePairs(rows, rows: n, rowSize: rowSize, offset: 0, heads: h.heads, pairs: p.rank / 2, groupSize: h.groupSize,
                                    frequencies: frequencies, startPosition: start)
            try backend.rotatePairs(rows, rows: n, rowSize: rowSize, offset: qSize, heads: h.kvHeads, pairs: p.rank / 2, groupSize: 1,
                                    frequencies: frequencies, startPosition: start)
            try backend.splitColumns(rows, rows: n, rowSize: rowSize, into: [(0, qSize, queries), (qSize, p.keyRowSize, keys)])
            try backend.store(keys, offset: 0, into: .lowRankKeys, of: cache, rows: n, startPosition: start)
        }
        return .lisa(LiSAScores(previous: lisa.logs[(l - 1) % 2], stride: capacity, alignment: state.alignment, ffnWidth: p.ffnWidth,
                                queries: lisa.queries ?? lisa.logs[0], keys: cache, rank: p.rank,
                                lowRankScale: 1 / Float(h.headDim).squareRoot(), workspace: lisa.logs[l % 2]))
    }

    /// LiSA layers must follow a layer whose attention covers every earlier key (no sliding window).
    static func checkLiSA(_ specs: [LayerSpec], hyper h: LlamaHyperParameters) throws {
        for (l, spec) in specs.enumerated() {
            guard let p = spec.scores.lisaParameters else { continue }
            let problems = p.problems(heads: h.heads, kvHeads: h.kvHeads, hidden: h.hiddenSize, headDim: h.headDim)
            if !problems.isEmpty { throw ModelLoadError("LiSA layer \(l): " + problems.joined(separator: "; ")) }
            for layer in [l - 1, l] where h.options.window(layer: layer) != nil {
                throw ModelLoadError("layer \(l) is LiSA but layer \(layer) uses sliding-window attention (LiSA needs every earlier key's log-probability)")
            }
        }
    }
}
