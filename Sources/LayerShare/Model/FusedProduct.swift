import ModelFormats

// The fused-op vocabulary, generic over what carries the data: backends pass their tensors,
// weights and caches (`InferenceBackend.product`); VulkanKernels passes device buffers.

/// What a weight multiplies in a fused product.
public enum FusedInput<Norm> {
    /// x itself.
    case plain
    /// rmsnorm(x) · weight, row by row (the norm before the attention and FFN blocks); `Norm` is the
    /// norm's weight, or for the kernels where its parts come from.
    case rmsNorm(Norm, eps: Float)

    public var isPlain: Bool {
        if case .plain = self { return true }
        return false
    }
}

/// RoPE and the KV-cache write that follow a stacked [q; k; v] projection.
public struct RopeIntoCache<Cache> {
    public var heads: Int, kvHeads: Int, headDim: Int
    public var startPosition: Int
    public var theta: Float
    /// Pair i's frequency theta^(−2i/headDim) is divided by divisors[i] (RoPE scaling); nil: plain RoPE.
    public var divisors: [Float]?
    public var layout: RopeLayout
    public var cache: Cache
    public init(heads: Int, kvHeads: Int, headDim: Int, startPosition: Int, theta: Float, divisors: [Float]? = nil,
                layout: RopeLayout, cache: Cache) {
        self.heads = heads; self.kvHeads = kvHeads; self.headDim = headDim
        self.startPosition = startPosition; self.theta = theta; self.divisors = divisors; self.layout = layout; self.cache = cache
    }
}

/// Where the results of a fused product go.
public enum FusedOutput<Tensor, NextNorm, Cache> {
    /// y = W·x
    case store(Tensor)
    /// y += W·x: the residual add after the attention output and FFN down projections. `nextNorm`
    /// says which norm the next product reads y through (`.rmsNorm(nextNorm, …)`; for the kernels,
    /// where to prepare its input), so a backend may prepare that norm's input here; the results
    /// are the same either way.
    case accumulate(Tensor, nextNorm: NextNorm? = nil)
    /// W = [gate; up] (2F rows): y = silu(gate·x) ⊙ (up·x), rows of F.
    case swiglu(Tensor)
    /// W = [gate; up] (2F rows): y = gelu_tanh(gate·x) ⊙ (up·x) (Gemma's GeGLU).
    case geglu(Tensor)
    /// W = [q; k; v]: rotated Q rows into `queries` (heads·headDim per row), rotated K and plain V into
    /// the cache at startPosition + row.
    case ropeIntoCache(queries: Tensor, RopeIntoCache<Cache>)

    /// The tensor y: where the results go (Q for a RoPE output).
    public var destination: Tensor {
        switch self {
        case let .store(t), let .accumulate(t, _), let .swiglu(t), let .geglu(t), let .ropeIntoCache(t, _): return t
        }
    }

    /// The op fused after the product, for profile labels; nil for a plain store.
    public var fusedOpName: String? {
        switch self {
        case .store: return nil
        case .accumulate: return "residual"
        case .swiglu: return "swiglu"
        case .geglu: return "geglu"
        case .ropeIntoCache: return "rope_kv"
        }
    }

    /// The same output in another carrier's terms. `nextNorm` may return nil: the next norm is then
    /// not prepared.
    public func map<T, N, C>(tensor: (Tensor) throws -> T, nextNorm: (NextNorm) throws -> N?,
                             rope: (RopeIntoCache<Cache>) throws -> RopeIntoCache<C>) rethrows -> FusedOutput<T, N, C> {
        switch self {
        case let .store(t): return .store(try tensor(t))
        case let .accumulate(t, next): return .accumulate(try tensor(t), nextNorm: try next.flatMap(nextNorm))
        case let .swiglu(t): return .swiglu(try tensor(t))
        case let .geglu(t): return .geglu(try tensor(t))
        case let .ropeIntoCache(t, r): return .ropeIntoCache(queries: try tensor(t), try rope(r))
        }
    }
}

extension InferenceBackend {
    /// The gated activation `activation` names.
    func gated(_ activation: FFNActivation, gate: Tensor, gateOffset: Int, up: Tensor, upOffset: Int, into out: Tensor, count: Int) throws {
        switch activation {
        case .silu: try swiglu(gate: gate, gateOffset: gateOffset, up: up, upOffset: upOffset, into: out, count: count)
        case .geluTanh: try geglu(gate: gate, gateOffset: gateOffset, up: up, upOffset: upOffset, into: out, count: count)
        }
    }
}

extension RopeIntoCache {
    /// The same rotation, writing into `cache`.
    public func with<C>(cache: C) -> RopeIntoCache<C> {
        RopeIntoCache<C>(heads: heads, kvHeads: kvHeads, headDim: headDim, startPosition: startPosition, theta: theta,
                         divisors: divisors, layout: layout, cache: cache)
    }
}

/// Scratch tensors for `unfusedProduct`, grown on demand and reused.
public final class ProductScratch<Backend: InferenceBackend> {
    private var tensors: [Int: Backend.Tensor] = [:]
    private var counts: [Int: Int] = [:]
    public init() {}

    func tensor(_ slot: Int, count: Int, backend: Backend) throws -> Backend.Tensor {
        if let t = tensors[slot], counts[slot]! >= count { return t }
        let t = try backend.makeTensor(count, label: "product scratch \(slot)")
        tensors[slot] = t
        counts[slot] = count
        return t
    }
}

extension InferenceBackend {
    /// `product` as separate ops (norm, matmul, then add / swiglu / rope + cache store), for
    /// backends or cases without a fused kernel. Same results up to float32 rounding order.
    public func unfusedProduct(_ weight: Weight, _ x: Tensor, rows: Int, input: FusedInput<Weight>,
                               output: FusedOutput<Tensor, Weight, Cache>, label: String, scratch: ProductScratch<Self>) throws {
        let (outRows, cols) = shape(of: weight)
        var source = x
        if case let .rmsNorm(normWeight, eps) = input {
            source = try scratch.tensor(0, count: rows * cols, backend: self)
            try rmsnorm(x, weight: normWeight, into: source, rows: rows, dim: cols, eps: eps)
        }
        if case let .store(y) = output {
            try matmul(weight, source, into: y, rows: rows, label: label)
            return
        }
        let wide = try scratch.tensor(1, count: rows * outRows, backend: self)
        try matmul(weight, source, into: wide, rows: rows, label: label)
        switch output {
        case .store: break
        case let .accumulate(y, _):
            try add(y, wide, into: y, count: rows * outRows)
        case let .swiglu(y), let .geglu(y):
            let half = outRows / 2
            let activation: FFNActivation
            if case .geglu = output { activation = .geluTanh } else { activation = .silu }
            if rows == 1 {
                try gated(activation, gate: wide, gateOffset: 0, up: wide, upOffset: half, into: y, count: half)
            } else {
                let up = try scratch.tensor(2, count: rows * half, backend: self)
                try splitColumns(wide, rows: rows, rowSize: outRows, into: [(0, half, y), (half, half, up)])
                try gated(activation, gate: y, gateOffset: 0, up: up, upOffset: 0, into: y, count: rows * half)
            }
        case let .ropeIntoCache(queries, r):
            try ropeIntoCache(wide, rows: rows, heads: r.heads, kvHeads: r.kvHeads, headDim: r.headDim, startPosition: r.startPosition,
                              theta: r.theta, divisors: r.divisors, layout: r.layout, cache: r.cache)
            try splitColumns(wide, rows: rows, rowSize: outRows, into: [(0, r.heads * r.headDim, queries)])
        }
    }
}
