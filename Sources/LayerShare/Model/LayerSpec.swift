import ModelFormats

/// How one layer computes attention, resolved from a sharing plan: where its attention scores come
/// from, which weight slices its heads read, and what it hands to later layers. The weights a layer
/// loads and its KV cache (`CacheSpec`) follow from it, so a sharing method is a choice of specs,
/// not a code path.
public struct LayerSpec: Equatable, Sendable {
    /// Where the layer's attention probabilities come from.
    public enum ScoreSource: Equatable, Sendable {
        /// softmax(Q·Kᵀ/√d + causal mask) from the layer's own Q and K.
        case own
        /// Shared Attention: the probabilities of an earlier layer that computes its own; this
        /// layer projects only V and applies them to it.
        case shared(from: Int)
    }

    /// What a layer must hand to the layers that read its attention, in the same step.
    public enum Emission: Equatable, Sendable {
        case nothing
        /// Its attention probabilities (Shared Attention sources).
        case probabilities
    }

    /// Which projections the layer computes from its normed input.
    public enum Projections: Equatable, Sendable {
        /// Q, K and V stacked into one product.
        case queryKeyValue
        /// V only (the scores come from elsewhere).
        case value
    }

    public let scores: ScoreSource
    public let heads: HeadLayout
    public let emits: Emission

    public var projections: Projections { scores == .own ? .queryKeyValue : .value }

    /// The cache streams this layer keeps: K only where it computes its own scores.
    public func cache(kvHeads: Int, headDim: Int) -> CacheSpec {
        let row = kvHeads * headDim
        switch scores {
        case .own: return CacheSpec([.init(.keys, rowSize: row), .init(.values, rowSize: row)])
        case .shared: return CacheSpec([.init(.values, rowSize: row)])
        }
    }

    public func cache(for hyper: LlamaHyperParameters) -> CacheSpec { cache(kvHeads: hyper.kvHeads, headDim: hyper.headDim) }

    /// One line for listings, e.g. "shared from 26" or "own, emits probabilities".
    public var summary: String {
        var parts: [String]
        switch scores {
        case .own: parts = ["own"]
        case let .shared(src): parts = ["shared from \(src)"]
        }
        if emits == .probabilities { parts.append("emits probabilities") }
        if !heads.isIdentity { parts.append("head layout \(heads.slices)") }
        return parts.joined(separator: ", ")
    }

    /// Every layer computing its own attention (the unmodified model).
    public static func standard(layers: Int, kvHeads: Int) -> [LayerSpec] {
        // No consumers, nothing to emit: resolve cannot fail.
        try! resolve(Array(repeating: .own, count: layers), kvHeads: kvHeads)
    }

    /// Specs for the given score sources, with what each layer emits derived from who reads it.
    /// Throws naming every layer whose source is invalid (out of range, not earlier, or itself borrowed).
    public static func resolve(_ sources: [ScoreSource], heads: [HeadLayout]? = nil, kvHeads: Int) throws -> [LayerSpec] {
        let n = sources.count
        var problems: [PlanProblem] = []
        let layouts = heads ?? Array(repeating: HeadLayout.identity(kvHeads: kvHeads), count: n)
        if layouts.count != n { problems.append(PlanProblem(layer: nil, "\(layouts.count) head layouts for \(n) layers")) }
        var emits = [Emission](repeating: .nothing, count: n)
        for (l, source) in sources.enumerated() {
            guard case let .shared(src) = source else { continue }
            if src < 0 || src >= n {
                problems.append(PlanProblem(layer: l, "shares the attention of layer \(src), which is out of range 0..<\(n)"))
            } else if src >= l {
                problems.append(PlanProblem(layer: l, "shares the attention of layer \(src), which does not come before it"))
            } else if sources[src] != .own {
                problems.append(PlanProblem(layer: l, "shares the attention of layer \(src), which borrows its own; a source must compute its attention"))
            } else {
                emits[src] = .probabilities
            }
        }
        for (l, layout) in layouts.enumerated() where l < n {
            problems += layout.problems(kvHeads: kvHeads).map { PlanProblem(layer: l, $0) }
        }
        guard problems.isEmpty else { throw SharingPlanError(source: "layer specs", problems: problems) }
        return (0..<n).map { LayerSpec(scores: sources[$0], heads: layouts[$0], emits: emits[$0]) }
    }
}

/// Which weight slice each KV group of a layer reads (its query heads' Q rows, its K and V rows,
/// its O columns). The identity is every group reading its own; head-wise sharing points a group
/// at another group's slice so that slice is stored once.
public struct HeadLayout: Equatable, Sendable {
    /// slices[g] = the KV group whose weights group g reads.
    public let slices: [Int]

    public init(slices: [Int]) { self.slices = slices }

    public static func identity(kvHeads: Int) -> HeadLayout { HeadLayout(slices: Array(0..<kvHeads)) }

    public var isIdentity: Bool { slices.enumerated().allSatisfy { $0.offset == $0.element } }

    func problems(kvHeads: Int) -> [String] {
        guard slices.count == kvHeads else { return ["head layout has \(slices.count) entries for \(kvHeads) KV groups"] }
        return slices.enumerated().compactMap { g, s in
            (0..<kvHeads).contains(s) ? nil : "KV group \(g) reads weight slice \(s), out of range 0..<\(kvHeads)"
        }
    }
}

/// The streams of one layer's KV cache and their row sizes (float32 elements per position).
public struct CacheSpec: Equatable, Sendable {
    public enum Stream: String, Equatable, Sendable {
        case keys = "K"
        case values = "V"
    }

    public struct StreamSpec: Equatable, Sendable {
        public let stream: Stream
        public let rowSize: Int
        public init(_ stream: Stream, rowSize: Int) { self.stream = stream; self.rowSize = rowSize }
    }

    public let streams: [StreamSpec]
    public init(_ streams: [StreamSpec]) { self.streams = streams }

    /// Row size of `stream`, nil if the cache does not keep it.
    public func rowSize(_ stream: Stream) -> Int? { streams.first { $0.stream == stream }?.rowSize }

    /// Bytes one cached position takes (float32 rows of every stream).
    public var bytesPerToken: Int { streams.reduce(0) { $0 + $1.rowSize * 4 } }

    public var summary: String { streams.map { "\($0.stream.rawValue)[\($0.rowSize)]" }.joined(separator: " + ") }
}

/// One layer's KV cache on a backend: a `Storage` (host tensor, device buffer) per stream of its spec.
public final class KVCache<Storage> {
    public let spec: CacheSpec
    public let capacity: Int
    private let storage: [CacheSpec.Stream: Storage]

    /// `make(stream, rowSize)` allocates one stream's storage for `capacity` positions.
    public init(_ spec: CacheSpec, capacity: Int, make: (CacheSpec.Stream, Int) throws -> Storage) rethrows {
        self.spec = spec
        self.capacity = capacity
        var storage: [CacheSpec.Stream: Storage] = [:]
        for s in spec.streams { storage[s.stream] = try make(s.stream, s.rowSize) }
        self.storage = storage
    }

    /// The stream's storage and row size, or an error naming what the cache keeps instead.
    public func stream(_ stream: CacheSpec.Stream, _ what: @autoclosure () -> String) throws -> (storage: Storage, rowSize: Int) {
        guard let s = storage[stream], let rowSize = spec.rowSize(stream) else {
            throw ModelLoadError("\(what()): the cache keeps \(spec.summary), no \(stream.rawValue) stream")
        }
        return (s, rowSize)
    }
}
