import Foundation

/// The fitted parameters of one LiSA layer (docs: "LiSA (LayerShare formulation)").
///
/// The layer's attention logits are rebuilt from the previous layer's log-probabilities G (all heads
/// of one query/key pair at a time):
///   A = R·G + U·silu(W·G + b) + c                   (head alignment, tiny FFN over the head axis)
///   Δ[h] = q_r[h] · k_r[g(h)] / √headDim             (low-rank term from this layer's own input)
///   P = softmax_j(A + Δ)
/// with q_r = rope_sel(x·Wqrᵀ), k_r = rope_sel(x·Wkrᵀ): adjacent pairs (2p, 2p+1) of a group's
/// vectors turn at that group's `ropeFrequencies[p]` radians per position (0 = not rotated).
public struct LiSALayerParameters: Equatable, Sendable {
    public let layer: Int
    public let heads: Int, kvHeads: Int
    public let hidden: Int, headDim: Int
    /// Low-rank width per head (even; 0 = no low-rank term) and FFN width (0 = linear mixing only).
    public let rank: Int, ffnWidth: Int
    /// R [heads, heads], W [ffnWidth, heads], b [ffnWidth], U [heads, ffnWidth], c [heads], row-major.
    public var headMix: [Float], ffnIn: [Float], ffnInBias: [Float], ffnOut: [Float], outBias: [Float]
    /// Wqr [heads·rank, hidden] and Wkr [kvHeads·rank, hidden]: rows r of head h at h·rank + r.
    public var queryLowRank: [Float], keyLowRank: [Float]
    /// [kvHeads, rank/2]: inverse frequency of each rotated pair of a group (its query heads share it).
    public var ropeFrequencies: [Float]

    public init(layer: Int, heads: Int, kvHeads: Int, hidden: Int, headDim: Int, rank: Int, ffnWidth: Int,
                headMix: [Float], ffnIn: [Float], ffnInBias: [Float], ffnOut: [Float], outBias: [Float],
                queryLowRank: [Float], keyLowRank: [Float], ropeFrequencies: [Float]) {
        self.layer = layer; self.heads = heads; self.kvHeads = kvHeads; self.hidden = hidden; self.headDim = headDim
        self.rank = rank; self.ffnWidth = ffnWidth
        self.headMix = headMix; self.ffnIn = ffnIn; self.ffnInBias = ffnInBias; self.ffnOut = ffnOut; self.outBias = outBias
        self.queryLowRank = queryLowRank; self.keyLowRank = keyLowRank; self.ropeFrequencies = ropeFrequencies
    }

    /// "Direct sharing with rearranged heads": head h of this layer takes head `permutation[h]` of the
    /// previous layer's log-probabilities, FFN output and low-rank term zero (the fitting's start).
    public static func permutation(_ permutation: [Int], layer: Int, kvHeads: Int, hidden: Int, headDim: Int,
                                   rank: Int, ffnWidth: Int, ropeFrequencies: [Float]? = nil) -> LiSALayerParameters {
        let h = permutation.count
        var mix = [Float](repeating: 0, count: h * h)
        for (row, col) in permutation.enumerated() { mix[row * h + col] = 1 }
        return LiSALayerParameters(layer: layer, heads: h, kvHeads: kvHeads, hidden: hidden, headDim: headDim, rank: rank, ffnWidth: ffnWidth,
                                   headMix: mix, ffnIn: .init(repeating: 0, count: ffnWidth * h), ffnInBias: .init(repeating: 0, count: ffnWidth),
                                   ffnOut: .init(repeating: 0, count: h * ffnWidth), outBias: .init(repeating: 0, count: h),
                                   queryLowRank: .init(repeating: 0, count: h * rank * hidden),
                                   keyLowRank: .init(repeating: 0, count: kvHeads * rank * hidden),
                                   ropeFrequencies: ropeFrequencies ?? .init(repeating: 0, count: kvHeads * rank / 2))
    }

    /// The alignment network packed for the kernels: R, W, b, U, c back to back.
    public var alignmentTable: [Float] { headMix + ffnIn + ffnInBias + ffnOut + outBias }
    public static func alignmentTableCount(heads h: Int, ffnWidth f: Int) -> Int { h * h + 2 * h * f + f + h }

    /// Low-rank rows [Wqr; Wkr] stacked: one product gives [q_r | k_r] per row.
    public var lowRankRows: [Float] { queryLowRank + keyLowRank }
    /// Floats of one [q_r | k_r] row, and of one cached low-rank key row.
    public var lowRankRowSize: Int { (heads + kvHeads) * rank }
    public var keyRowSize: Int { kvHeads * rank }

    /// Parameters of the layer (alignment + low rank), and the Q/K weights they replace.
    public var parameterCount: Int { Self.alignmentTableCount(heads: heads, ffnWidth: ffnWidth) + hidden * rank * (heads + kvHeads) }
    public var replacedParameterCount: Int { hidden * headDim * (heads + kvHeads) }

    /// Everything wrong with the arrays for a model of this shape, in words.
    public func problems(heads h: Int, kvHeads hkv: Int, hidden d: Int, headDim: Int) -> [String] {
        var out: [String] = []
        if heads != h || kvHeads != hkv || hidden != d || self.headDim != headDim {
            out.append("fitted for \(heads) heads / \(kvHeads) KV heads / hidden \(hidden) / head dim \(self.headDim), the model has \(h) / \(hkv) / \(d) / \(headDim)")
            return out
        }
        if rank < 0 || rank % 2 != 0 { out.append("rank \(rank) must be even and ≥ 0") }
        if rank > headDim { out.append("rank \(rank) exceeds the head dimension \(headDim)") }
        if ffnWidth < 0 || ffnWidth > 4096 { out.append("FFN width \(ffnWidth) is outside 0...4096") }
        guard out.isEmpty else { return out }
        let arrays: [(String, [Float], Int)] = [
            ("head_mix", headMix, h * h), ("ffn_in", ffnIn, ffnWidth * h), ("ffn_in_bias", ffnInBias, ffnWidth),
            ("ffn_out", ffnOut, h * ffnWidth), ("out_bias", outBias, h), ("q_lowrank", queryLowRank, h * rank * d),
            ("k_lowrank", keyLowRank, hkv * rank * d), ("rope_freqs", ropeFrequencies, hkv * rank / 2),
        ]
        for (name, values, count) in arrays {
            if values.count != count { out.append("\(name) has \(values.count) values, expected \(count)"); continue }
            if let i = values.firstIndex(where: { !$0.isFinite }) { out.append("\(name) has a non-finite value (\(values[i])) at index \(i)") }
        }
        return out
    }
}
