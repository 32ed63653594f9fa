import ModelFormats

/// The attention weights of layers under head-wise sharing, as compositions of unit slices: group g
/// of a layer contributes the Q rows of its query heads, its K and V rows and its columns of the
/// output projection, taken from the unit its head layout names.
enum HeadSharedWeights {
    /// Layers whose attention weights are composed: those with a group reading another unit, and
    /// those owning a unit someone reads (so that unit is stored once, for both). Empty without
    /// head-wise sharing: every layer then loads its tensors as they are.
    static func composedLayers(_ specs: [LayerSpec]) -> Set<Int> {
        var layers = Set<Int>()
        for (l, spec) in specs.enumerated() {
            for g in spec.heads.sharedGroups(layer: l) {
                layers.insert(l)
                layers.insert(spec.heads.sources[g].layer)
            }
        }
        return layers
    }

    /// Layer l's attention input (Q|K|V stacked, or V alone, as its spec projects) and output
    /// projection, composed from the units its groups read.
    static func compositions(layer l: Int, heads: HeadLayout, projections: LayerSpec.Projections,
                             source: WeightSource) throws -> (input: ComposedWeight, output: ComposedWeight) {
        let h = source.hyper
        typealias N = LlamaTensorName
        let units = heads.sources
        let queryRows = h.groupSize * h.headDim
        func rows(_ name: (Int) -> String, span: Int) throws -> [ComposedWeight.Part] {
            try units.map { u in ComposedWeight.Part(try source.weight(name(u.layer)), (u.group * span)..<((u.group + 1) * span)) }
        }
        var input: [ComposedWeight.Part] = []
        if projections == .queryKeyValue {
            input += try rows(N.attnQ, span: queryRows) + rows(N.attnK, span: h.headDim)
        }
        input += try rows(N.attnV, span: h.headDim)
        let output = try units.map { u in
            ComposedWeight.Part(try source.weight(N.attnOutput(u.layer)), (u.group * queryRows)..<((u.group + 1) * queryRows))
        }
        let inputLabel = projections == .queryKeyValue ? "blk.\(l).attn_qkv" : "blk.\(l).attn_v"
        return (try ComposedWeight(label: inputLabel + " (head-shared)", axis: .rows, parts: input),
                try ComposedWeight(label: "blk.\(l).attn_output (head-shared)", axis: .columns, parts: output))
    }
}
