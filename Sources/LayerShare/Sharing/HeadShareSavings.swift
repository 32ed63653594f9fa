import ModelFormats

/// Attention weight bytes a plan no longer stores, in the tensors' stored types (Q4_1 blocks etc.).
///
/// Counted as the distinct (unit, slice) pairs the layers read without head sharing minus those they
/// read with it: a layer reads V and O slices always and Q and K slices only when it computes its own
/// scores, so under Shared Attention a shared unit saves no Q/K there (and reading an SA layer's
/// Q/K, which that layer does not load itself, saves none either).
public struct HeadShareSavings: Equatable, Sendable {
    /// Bytes saved per projection.
    public let saved: [UnitProjection: Int]
    /// Bytes of every layer's Q, K, V and O tensors (the unmodified model).
    public let attentionBytes: Int
    /// Bytes of every tensor of the model.
    public let modelBytes: Int

    public var total: Int { saved.values.reduce(0, +) }

    /// `layouts[l]` = which unit each group of layer l reads; `ownScores[l]` = layer l loads Q and K.
    public static func of(layouts: [HeadLayout], ownScores: [Bool], weights: WeightSource) throws -> HeadShareSavings {
        let h = weights.hyper
        let identity = (0..<h.layers).map { HeadLayout.identity(layer: $0, kvHeads: h.kvHeads) }
        let before = slicesRead(identity, ownScores: ownScores), after = slicesRead(layouts, ownScores: ownScores)
        var saved: [UnitProjection: Int] = [:]
        for p in UnitProjection.allCases { saved[p] = 0 }
        // Net, not a set difference: a target may make an SA layer's Q/K slice read that was not before.
        for s in before { saved[s.projection]! += try sliceBytes(s.projection, unit: s.unit, weights: weights) }
        for s in after { saved[s.projection]! -= try sliceBytes(s.projection, unit: s.unit, weights: weights) }
        var attention = 0
        for l in 0..<h.layers {
            for p in UnitProjection.allCases { attention += try weights.attentionTensor(p, layer: l).data.count }
        }
        let all = try weights.tensorNames.reduce(0) { $0 + (try weights.weight($1).data.count) }
        return HeadShareSavings(saved: saved, attentionBytes: attention, modelBytes: all)
    }

    struct Slice: Hashable { let unit: WeightUnit; let projection: UnitProjection }

    static func slicesRead(_ layouts: [HeadLayout], ownScores: [Bool]) -> Set<Slice> {
        var out = Set<Slice>()
        for (l, layout) in layouts.enumerated() {
            for source in layout.sources {
                for p in UnitProjection.allCases where p.loadedWithoutOwnScores || ownScores[l] {
                    out.insert(Slice(unit: source, projection: p))
                }
            }
        }
        return out
    }

    /// Stored bytes of one unit's slice: whole rows for Q/K/V, a column range of every row for O
    /// (whole blocks when the range is block-aligned, else its share of the row's bytes).
    static func sliceBytes(_ p: UnitProjection, unit: WeightUnit, weights: WeightSource) throws -> Int {
        let t = try weights.attentionTensor(p, layer: unit.layer)
        let range = p.range(group: unit.group, hyper: weights.hyper)
        guard let rowBytes = t.type.rowBytes(t.cols) else { throw ModelLoadError("\(t.name): rows are not whole \(t.type) blocks") }
        if p != .output { return range.count * rowBytes }
        let columns = t.type.rowBytes(range.count) ?? rowBytes * range.count / t.cols
        return t.rows * columns
    }
}
