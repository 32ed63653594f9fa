import ModelFormats

extension Transformer {
    /// Layer l's Q|K|V biases stacked like its attention input ([q; k; v], or v alone where the
    /// layer only projects values), as one float32 vector.
    static func inputBias(layer l: Int, projections: LayerSpec.Projections, source: WeightSource,
                          backend: Backend) throws -> Backend.Weight {
        typealias N = LlamaTensorName
        let names = projections == .queryKeyValue ? [N.attnQBias(l), N.attnKBias(l), N.attnVBias(l)] : [N.attnVBias(l)]
        var values: [Float] = []
        for name in names {
            let t = try source.weight(name)
            values += Dequantize.row(t.type, t.data.baseAddress!, count: t.elementCount)
        }
        let label = projections == .queryKeyValue ? "blk.\(l).attn_qkv.bias" : "blk.\(l).attn_v.bias"
        return try backend.loadWeight(.float32(name: label, values: values))
    }
}
