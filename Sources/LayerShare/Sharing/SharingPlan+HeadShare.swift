import Foundation
import ModelFormats
import VulkanCompute

extension SharingPlan {
    /// A head-wise sharing plan, optionally with Shared Attention spans (each range `a...b` reuses layer
    /// a − 1). Validated against the model like `sharedAttention(spans:model:)`.
    public static func headShare(units: [SharedUnit], strategy: HeadShareStrategy, rate: Double, chains: HeadShareChains,
                                 spans: [ClosedRange<Int>] = [], model: LoadedModel, notes: String? = nil) throws -> SharingPlan {
        try headShare(units: units, strategy: strategy, rate: rate, chains: chains, spans: spans,
                      identity: ModelIdentity.of(model), notes: notes)
    }

    /// The same for a model known by its identity (synthetic weights in tests).
    public static func headShare(units: [SharedUnit], strategy: HeadShareStrategy, rate: Double, chains: HeadShareChains,
                                 spans: [ClosedRange<Int>] = [], identity: ModelIdentity, notes: String? = nil) throws -> SharingPlan {
        let list = spanList(spans)
        let section = HeadShareSection(strategy: strategy.rawValue, rate: rate, chains: chains.rawValue,
                                       units: units.sorted { $0.target < $1.target })
        var plan = SharingPlan(method: methodName(sharedAttention: !list.isEmpty, headShare: !units.isEmpty), model: identity,
                               layers: nil, sharedAttention: list.isEmpty ? nil : SharedAttentionSection(spans: list),
                               headShare: section, notes: notes)
        let problems = plan.structuralProblems(layerCount: identity.layers)
        guard problems.isEmpty else { throw SharingPlanError(source: "head-share units", problems: problems) }
        plan.layers = plan.derivedLayerEntries(layerCount: identity.layers)
        return plan
    }

    /// Whether each layer computes its own scores (so loads Q and K): false inside SA spans.
    func ownScoreLayers() -> [Bool] {
        let n = model.layers
        var own = [Bool](repeating: true, count: n)
        for e in layers ?? derivedLayerEntries(layerCount: n) where e.mode == LayerModeName.sharedAttention && (0..<n).contains(e.layer) {
            own[e.layer] = false
        }
        return own
    }

    /// Attention weight bytes the head-share section saves on `weights` (the model the plan fits).
    public func headShareSavings(weights: WeightSource) throws -> HeadShareSavings {
        let h = weights.hyper
        guard h.layers == model.layers, h.kvHeads == model.kvHeads else {
            throw ModelLoadError("the plan is for \(model.layers) layers × \(model.kvHeads) KV groups, the weights have \(h.layers) × \(h.kvHeads)")
        }
        return try HeadShareSavings.of(layouts: headLayouts(layers: h.layers, kvHeads: h.kvHeads), ownScores: ownScoreLayers(), weights: weights)
    }

    /// Shared units per layer, e.g. "3:1 5:2" (layers without any left out).
    public var sharedUnitsPerLayer: [(layer: Int, count: Int)] {
        Dictionary(grouping: sharedUnits, by: \.layer).map { ($0.key, $0.value.count) }.sorted { $0.layer < $1.layer }
    }

    func headShareSummaryLines(weights: WeightSource?) -> [String] {
        guard let section = headShare, !section.units.isEmpty else { return [] }
        let all = model.layers * model.kvHeads
        var lines = ["head-wise sharing (strategy \(section.strategy), rate \(section.rate), chains \(section.chains)): "
                     + "\(section.units.count) of \(all) units (KV groups) read an earlier unit's weights",
                     "units shared per layer (layer:count): " + sharedUnitsPerLayer.map { "\($0.layer):\($0.count)" }.joined(separator: " ")]
        if let weights {
            do {
                lines.append("weight bytes saved: " + (try headShareSavings(weights: weights)).summary)
            } catch {
                lines.append("weight bytes saved: unknown (\(error))")
            }
        }
        return lines
    }
}

extension HeadShareSavings {
    /// "1234 bytes (1.2 KiB; Q …, K …, V …, O …), 3.4% of the attention weights, 0.9% of all weights".
    public var summary: String {
        func percent(_ of: Int) -> Double { of > 0 ? 100 * Double(total) / Double(of) : 0 }
        let parts = UnitProjection.allCases.map { "\($0.rawValue) \(saved[$0] ?? 0)" }.joined(separator: ", ")
        return "\(total) bytes (\(formatBytes(total)); \(parts)), "
            + String(format: "%.1f%% of the attention weights, %.1f%% of all weights", percent(attentionBytes), percent(modelBytes))
    }
}
