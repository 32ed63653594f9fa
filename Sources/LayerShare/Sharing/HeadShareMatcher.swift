import ModelFormats

/// A target unit and the unit of an earlier layer whose descriptor is most similar to it.
public struct HeadMatch: Equatable, Sendable, CustomStringConvertible {
    public let target: WeightUnit
    public let reference: WeightUnit
    /// Cosine of the two descriptors.
    public let similarity: Double
    public var description: String { "\(target) ← \(reference) (\(similarity))" }
}

/// Head-wise matching (methods.md §3.2), one unit per KV group: every unit of layers 1…L−1 against
/// every unit of every earlier layer; same-layer units are never candidates, layer 0 is never a target.
public struct HeadShareMatches: Sendable {
    public let strategy: HeadShareStrategy
    public let layers: Int
    public let kvHeads: Int
    /// One per unit of layers 1…L−1, in unit order.
    public let best: [HeadMatch]
    /// cos(target, any earlier unit), for the unit a chain resolves to.
    public let cosines: UnitCosines

    /// Every unit of the model, layer 0 included: the denominator of the share rate (as in the paper).
    public var unitCount: Int { layers * kvHeads }

    /// Best matches by similarity, highest first; ties go to the earlier target so the order is stable.
    public var ranked: [HeadMatch] {
        best.sorted { $0.similarity != $1.similarity ? $0.similarity > $1.similarity : $0.target < $1.target }
    }

    /// The top `count` of the ranking (at most every target).
    public func selected(count: Int) -> [HeadMatch] { Array(ranked.prefix(max(0, count))) }

    /// Units a share rate asks for: Int(rate · all units), as the reference code's int(share_rate · L · h).
    public static func count(rate: Double, units: Int) throws -> Int {
        guard rate.isFinite, (0...1).contains(rate) else {
            throw ModelLoadError("share rate must be between 0 and 1 (a fraction of all units), got \(rate)")
        }
        return Int((rate * Double(units)).rounded(.towardZero))
    }
}

public enum HeadShareMatcher {
    /// What a long step is doing, for progress lines.
    public enum Phase: String, Sendable {
        case descriptors = "dequantizing descriptors"
        case cosines = "cosine products"
    }

    /// Descriptors of every unit, their cosines with earlier layers, and each target's best match.
    /// `progress(phase, done, total)` is called after each layer of each phase.
    public static func match(weights: WeightSource, strategy: HeadShareStrategy = .qk,
                             progress: (Phase, Int, Int) -> Void = { _, _, _ in }) throws -> HeadShareMatches {
        let h = weights.hyper
        let descriptors = try UnitDescriptors(weights: weights, strategy: strategy) { progress(.descriptors, $0, $1) }
        let cosines = descriptors.earlierCosines { progress(.cosines, $0, $1) }
        var best: [HeadMatch] = []
        for layer in 1..<max(h.layers, 1) {
            for group in 0..<h.kvHeads {
                best.append(bestMatch(for: WeightUnit(layer: layer, group: group), kvHeads: h.kvHeads, cosines: cosines))
            }
        }
        return HeadShareMatches(strategy: strategy, layers: h.layers, kvHeads: h.kvHeads, best: best, cosines: cosines)
    }

    /// The earlier unit of highest cosine; the first one (lowest layer, then group) on ties.
    static func bestMatch(for target: WeightUnit, kvHeads: Int, cosines: UnitCosines) -> HeadMatch {
        var bestUnit = WeightUnit(layer: 0, group: 0)
        var bestValue = -Double.infinity
        for layer in 0..<target.layer {
            for group in 0..<kvHeads {
                let unit = WeightUnit(layer: layer, group: group)
                let c = cosines(target, unit)
                if c > bestValue { bestValue = c; bestUnit = unit }
            }
        }
        return HeadMatch(target: target, reference: bestUnit, similarity: bestValue)
    }
}
