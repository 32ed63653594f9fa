/// Heads of one attention call: query head h reads KV head h / (heads / kvHeads).
public struct AttentionShape: Equatable, Sendable {
    public var heads: Int, kvHeads: Int, headDim: Int
    public init(heads: Int, kvHeads: Int, headDim: Int) {
        self.heads = heads; self.kvHeads = kvHeads; self.headDim = headDim
    }
    /// Floats of one query (or output) row.
    public var queryRow: Int { heads * headDim }
}

/// Where an attention call's probabilities come from.
public enum AttentionScores<Tensor, Cache> {
    /// softmax(Q·Kᵀ/√d + causal mask): rotated Q rows [rows, heads·headDim] against the K stream of
    /// `keys` (the layer's own cache, or under Shared Attention prefill its source's).
    case queries(Tensor, keys: Cache)
    /// Probability rows [heads, startPosition + 1] computed by another layer in this step (one query row).
    case probabilities(Tensor)
    /// A LiSA layer: logits rebuilt from the previous layer's log-probabilities (see `LiSAScores`).
    case lisa(LiSAScores<Tensor, Cache>)
}

/// Inputs of a LiSA attention call. Log-probability tensors are laid out [rows, heads, stride]: the
/// entry of query row i, head h, key j at (i·heads + h)·stride + j; only keys j ≤ startPosition + i
/// are defined.
public struct LiSAScores<Tensor, Cache> {
    /// log P of the previous layer for this step's rows.
    public var previous: Tensor
    public var stride: Int
    /// The packed alignment network (`LiSALayerParameters.alignmentTable`).
    public var alignment: Tensor
    public var ffnWidth: Int
    /// Rotated low-rank queries [rows, heads·rank] and the cache whose `.lowRankKeys` stream holds
    /// the rotated low-rank keys; unused at rank 0.
    public var queries: Tensor
    public var keys: Cache
    public var rank: Int
    /// Scale of q_r·k_r (1/√headDim).
    public var lowRankScale: Float
    /// [rows, heads, stride] floats a backend may use for the logits (the layer's own log-probability
    /// emission when it has one).
    public var workspace: Tensor

    public init(previous: Tensor, stride: Int, alignment: Tensor, ffnWidth: Int, queries: Tensor, keys: Cache, rank: Int,
                lowRankScale: Float, workspace: Tensor) {
        self.previous = previous; self.stride = stride; self.alignment = alignment; self.ffnWidth = ffnWidth
        self.queries = queries; self.keys = keys; self.rank = rank; self.lowRankScale = lowRankScale; self.workspace = workspace
    }
}

/// What an attention call writes besides its output, for later layers.
public enum AttentionEmission<Tensor> {
    case nothing
    /// The softmax rows [heads, startPosition + 1] (one query row).
    case probabilities(Tensor)
    /// log P for every query row of the call, [rows, heads, stride] (as `LiSAScores.previous`), for a
    /// LiSA layer that follows.
    case logProbabilities(Tensor, stride: Int)
}

/// One causal attention call: `rows` query rows at positions startPosition ..< startPosition + rows
/// over cache positions 0 ..< startPosition + rows; out [rows, heads·headDim] = P · V with V from
/// the V stream of `values`.
public struct AttentionOp<Tensor, Cache> {
    public var scores: AttentionScores<Tensor, Cache>
    public var values: Cache
    public var out: Tensor
    public var rows: Int
    public var startPosition: Int
    public var shape: AttentionShape
    public var emit: AttentionEmission<Tensor>
    /// Scale of Q·Kᵀ; nil: 1/√headDim.
    public var scale: Float?
    /// Sliding window: query position p sees keys p − window < k ≤ p only; nil: every earlier key.
    public var window: Int?

    public init(scores: AttentionScores<Tensor, Cache>, values: Cache, out: Tensor, rows: Int, startPosition: Int,
                shape: AttentionShape, emit: AttentionEmission<Tensor> = .nothing, scale: Float? = nil, window: Int? = nil) {
        self.scores = scores; self.values = values; self.out = out
        self.rows = rows; self.startPosition = startPosition; self.shape = shape; self.emit = emit
        self.scale = scale; self.window = window
    }

    /// Whether this call is plain causal attention at 1/√headDim (what every backend kernel computes).
    public var isPlainCausal: Bool { window == nil && (scale ?? 1 / Float(shape.headDim).squareRoot()) == 1 / Float(shape.headDim).squareRoot() }

    /// Keys every row can see at most: the context after this call.
    public var context: Int { startPosition + rows }

    /// The emitted probability tensor, if any.
    public var emittedProbabilities: Tensor? {
        if case let .probabilities(p) = emit { return p }
        return nil
    }

    /// The emitted log-probability tensor and its row stride, if any.
    public var emittedLogProbabilities: (tensor: Tensor, stride: Int)? {
        if case let .logProbabilities(t, stride) = emit { return (t, stride) }
        return nil
    }

    /// Shape errors common to every backend, named after `label`.
    public func check(_ label: String) throws {
        guard rows >= 1, startPosition >= 0 else {
            throw ModelLoadError("\(label): \(rows) query rows at position \(startPosition) (need at least one row, a position ≥ 0)")
        }
        if case .probabilities = scores, rows != 1 {
            throw ModelLoadError("\(label): given probability rows are for one query row (decode), got \(rows) rows")
        }
        if let window, window < 1 {
            throw ModelLoadError("\(label): sliding window \(window) must be at least 1")
        }
        if case .probabilities = emit, rows != 1 {
            throw ModelLoadError("\(label): probabilities can be emitted for one query row (decode) only, got \(rows) rows")
        }
        if let (_, stride) = emittedLogProbabilities, stride < context {
            throw ModelLoadError("\(label): log-probability rows of stride \(stride) cannot hold \(context) keys")
        }
        if case let .lisa(l) = scores {
            guard l.stride >= context else { throw ModelLoadError("\(label): LiSA input rows of stride \(l.stride) cannot hold \(context) keys") }
            guard window == nil else { throw ModelLoadError("\(label): LiSA layers do not support sliding windows") }
            guard l.rank >= 0, l.rank % 2 == 0, l.ffnWidth >= 0 else { throw ModelLoadError("\(label): LiSA rank \(l.rank) / FFN width \(l.ffnWidth) invalid") }
        }
        if emittedLogProbabilities != nil, window != nil {
            throw ModelLoadError("\(label): log-probabilities for LiSA cannot be emitted by a sliding-window layer")
        }
    }
}
