import Foundation

extension SharingPlan {
    /// Layers whose attention probabilities come from another layer.
    public var sharedLayerCount: Int { spans.reduce(0) { $0 + ($1.last - $1.first + 1) } }

    /// KV-cache bytes (float32 K and V, every layer) for `context` positions without the plan, and the
    /// bytes the plan's shared layers save (they keep no K rows). Nil when a product overflows.
    public func kvCacheSavings(context: Int) -> (total: Int, saved: Int)? {
        let perLayer = model.kvHeads.multipliedReportingOverflow(by: model.headDim * 4)
        guard !perLayer.overflow else { return nil }
        let perToken = perLayer.partialValue.multipliedReportingOverflow(by: 2 * model.layers)
        let total = perToken.partialValue.multipliedReportingOverflow(by: context)
        let saved = kvBytesSavedPerToken().multipliedReportingOverflow(by: context)
        guard !perToken.overflow, !total.overflow, !saved.overflow else { return nil }
        return (total.partialValue, saved.partialValue)
    }

    /// "K cache saved at 8192 tokens: 22.5 MiB of 67.5 MiB KV cache (33.3%)", for the CLI.
    public func kvCacheSavingsLine(context: Int) -> String? {
        guard sharedLayerCount > 0, let s = kvCacheSavings(context: context), s.total > 0 else { return nil }
        return String(format: "K cache saved at %d tokens of context: %.1f MiB of %.1f MiB KV cache (%.1f%%)", context,
                      Double(s.saved) / 1_048_576, Double(s.total) / 1_048_576, 100 * Double(s.saved) / Double(s.total))
    }

    /// A warning for a Shared Attention plan whose perplexity cost nobody measured: sharing softmax
    /// probabilities costs perplexity, steeply with the number of layers. Nil when nothing is shared.
    public func unmeasuredCostWarning(planPath: String) -> String? {
        let n = sharedLayerCount
        guard n > 0 else { return nil }
        return "warning: \(n) shared layer\(n == 1 ? "" : "s") will cost perplexity, and this plan's cost was not measured "
            + "(on SmolLM2-135M, GPL-3: 2 shared layers +7.7%, 12 layers +468%, see BENCHMARKS.md). Measure it with "
            + "`layershare ppl --plan \(planPath)`, or let `plan sa --max-ppl-increase PCT` choose spans within a budget."
    }
}
