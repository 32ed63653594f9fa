import ModelFormats

/// What the attention of a model costs under its layer specs: the parameters that make the scores
/// (Q/K projections, or LiSA's alignment and low-rank weights), the KV cache per token, and the
/// score work per decoded token at a context (V projection, P·V and the output projection are the
/// same in every mode and left out of the FLOPs, which count multiply-adds as 2).
public struct AttentionCost: Equatable, Sendable {
    public var scoreParameters: Int
    public var kvBytesPerToken: Int
    public var scoreFLOPsPerToken: Int

    public init(hyper h: LlamaHyperParameters, specs: [LayerSpec], context t: Int) {
        var params = 0, flops = 0, bytes = 0
        for spec in specs {
            bytes += spec.cache(for: h).bytesPerToken
            switch spec.scores {
            case .own:
                params += h.hiddenSize * h.headDim * (h.heads + h.kvHeads)
                flops += 2 * h.hiddenSize * h.headDim * (h.heads + h.kvHeads) + 2 * h.heads * h.headDim * t
            case .shared:
                break
            case let .lisa(p):
                params += p.parameterCount
                // Alignment at every key: R·g (H²), W·g (fH), U·silu (Hf); low-rank q_r·k_r (H·r); projections.
                flops += 2 * h.hiddenSize * p.rank * (h.heads + h.kvHeads) + 2 * t * (h.heads * h.heads + 2 * p.ffnWidth * h.heads + h.heads * p.rank)
            }
        }
        scoreParameters = params; kvBytesPerToken = bytes; scoreFLOPsPerToken = flops
    }

    /// "score parameters 5.97 M → 1.23 M, KV cache 46,080 → 30,720 B/token, score FLOPs/token at 1024: …"
    public static func comparison(hyper h: LlamaHyperParameters, specs: [LayerSpec], context t: Int) -> String {
        let base = AttentionCost(hyper: h, specs: LayerSpec.standard(layers: h.layers, kvHeads: h.kvHeads), context: t)
        let plan = AttentionCost(hyper: h, specs: specs, context: t)
        func m(_ x: Int) -> String { String(format: "%.3f M", Double(x) / 1e6) }
        return "Q/K (score) parameters \(m(base.scoreParameters)) → \(m(plan.scoreParameters)); KV cache \(base.kvBytesPerToken) → "
            + "\(plan.kvBytesPerToken) bytes/token; score FLOPs per token at \(t) tokens of context \(m(base.scoreFLOPsPerToken)) → \(m(plan.scoreFLOPsPerToken))"
    }
}
