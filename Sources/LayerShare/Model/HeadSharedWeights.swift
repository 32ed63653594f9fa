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

extension Transformer {
    /// Each layer's attention input projection (Q|K|V stacked, or V alone, as its spec projects) and
    /// output projection: the layers head-wise sharing involves composed of unit slices, loaded
    /// together so the backend can store each shared slice once; the others as their tensors are.
    static func attentionWeights(specs: [LayerSpec], source: WeightSource,
                                 backend: Backend) throws -> [(input: Backend.Weight, output: Backend.Weight)] {
        typealias N = LlamaTensorName
        let composed = HeadSharedWeights.composedLayers(specs).sorted()
        var composedWeights: [Int: (input: Backend.Weight, output: Backend.Weight)] = [:]
        if !composed.isEmpty {
            let parts = try composed.map {
                try HeadSharedWeights.compositions(layer: $0, heads: specs[$0].heads, projections: specs[$0].projections, source: source)
            }
            let loaded = try backend.loadComposed(parts.flatMap { [$0.input, $0.output] })
            for (i, l) in composed.enumerated() { composedWeights[l] = (loaded[2 * i], loaded[2 * i + 1]) }
        }
        return try specs.enumerated().map { l, spec in
            if let c = composedWeights[l] { return c }
            let input: Backend.Weight
            switch spec.projections {
            case .queryKeyValue:
                input = try backend.loadStacked([source.weight(N.attnQ(l)), source.weight(N.attnK(l)), source.weight(N.attnV(l))],
                                                label: "blk.\(l).attn_qkv")
            case .value, .valueAndLowRank:
                input = try backend.loadWeight(source.weight(N.attnV(l)))
            }
            return (input, try backend.loadWeight(source.weight(N.attnOutput(l))))
        }
    }
}
