import ModelFormats

/// One of the four weight slices a unit (one KV group of one layer) owns.
public enum UnitProjection: String, CaseIterable, Sendable {
    /// Rows of attn_q: the group's query heads.
    case query = "Q"
    /// Rows of attn_k: the group's KV head.
    case key = "K"
    /// Rows of attn_v: the group's KV head.
    case value = "V"
    /// Columns of attn_output: the inputs that the group's query heads' outputs feed.
    case output = "O"

    func tensorName(layer: Int) -> String {
        switch self {
        case .query: return LlamaTensorName.attnQ(layer)
        case .key: return LlamaTensorName.attnK(layer)
        case .value: return LlamaTensorName.attnV(layer)
        case .output: return LlamaTensorName.attnOutput(layer)
        }
    }

    /// The group's range of this projection's tensor: output rows for Q/K/V, input columns for O
    /// (GGUF order: a row is one output, so a head's O slice is a range of columns in every row).
    func range(group: Int, hyper h: LlamaHyperParameters) -> Range<Int> {
        let width = self == .query || self == .output ? h.groupSize * h.headDim : h.headDim
        return group * width ..< (group + 1) * width
    }

    /// Whether a layer that takes its scores from elsewhere (Shared Attention) still loads it.
    var loadedWithoutOwnScores: Bool { self == .value || self == .output }
}

/// Which projections' rows describe a unit when matching (methods.md §3.2; the paper's default is qk).
public enum HeadShareStrategy: String, CaseIterable, Sendable {
    case qk, q, k, v, qkv

    /// The projections whose rows are concatenated into the descriptor, in that order.
    public var projections: [UnitProjection] {
        switch self {
        case .qk: return [.query, .key]
        case .q: return [.query]
        case .k: return [.key]
        case .v: return [.value]
        case .qkv: return [.query, .key, .value]
        }
    }
}

extension WeightSource {
    /// Attention tensor of `layer` for `projection`, checked to have the shape the hyper-parameters imply
    /// (synthetic and foreign sources are not validated on load).
    func attentionTensor(_ projection: UnitProjection, layer: Int) throws -> WeightTensor {
        let t = try weight(projection.tensorName(layer: layer))
        let h = hyper
        let expected = projection == .output ? [h.qSize, h.hiddenSize] : [h.hiddenSize, projection == .query ? h.qSize : h.kvSize]
        guard t.shape == expected else { throw ModelError.shapeMismatch(tensor: t.name, expected: expected, actual: t.shape) }
        return t
    }
}
