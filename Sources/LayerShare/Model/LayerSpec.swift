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
        /// LiSA: rebuilt from the previous layer's attention log-probabilities by the fitted head
        /// alignment plus a low-rank Q/K term from this layer's input (`LiSALayerParameters`).
        case lisa(LiSALayerParameters)

        /// The LiSA parameters, if this is a LiSA source.
        public var lisaParameters: LiSALayerParameters? {
            if case let .lisa(p) = self { return p }
            return nil
        }
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
        /// V, and the low-rank [q_r | k_r] of a LiSA layer as a second product.
        case valueAndLowRank
    }

    public let scores: ScoreSource
    public let heads: HeadLayout
    public let emits: Emission
    /// Whether the next layer is LiSA and reads this layer's attention log-probabilities (every
    /// query row of the step, decode and prefill).
    public let emitsLogProbabilities: Bool

    public init(scores: ScoreSource, heads: HeadLayout, emits: Emission, emitsLogProbabilities: Bool = false) {
        self.scores = scores; self.heads = heads; self.emits = emits; self.emitsLogProbabilities = emitsLogProbabilities
    }

    public var projections: Projections {
        switch scores {
        case .own: return .queryKeyValue
        case .shared: return .value
        case .lisa: return .valueAndLowRank
        }
    }

    /// The cache streams this layer keeps: K only where it computes its own scores, the low-rank keys
    /// of a LiSA layer (none at rank 0).
    public func cache(kvHeads: Int, headDim: Int) -> CacheSpec {
        let row = kvHeads * headDim
        switch scores {
        case .own: return CacheSpec([.init(.keys, rowSize: row), .init(.values, rowSize: row)])
        case .shared: return CacheSpec([.init(.values, rowSize: row)])
        case let .lisa(p):
            return CacheSpec((p.rank > 0 ? [.init(.lowRankKeys, rowSize: p.keyRowSize)] : []) + [.init(.values, rowSize: row)])
        }
    }

    public func cache(for hyper: LlamaHyperParameters) -> CacheSpec { cache(kvHeads: hyper.kvHeads, headDim: hyper.headDim) }

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
        let layouts = heads ?? (0..<n).map { HeadLayout.identity(layer: $0, kvHeads: kvHeads) }
        if layouts.count != n { problems.append(PlanProblem(layer: nil, "\(layouts.count) head layouts for \(n) layers")) }
        var emits = [Emission](repeating: .nothing, count: n)
        var emitsLog = [Bool](repeating: false, count: n)
        for (l, source) in sources.enumerated() {
            if case let .lisa(p) = source {
                if p.layer != l {
                    problems.append(PlanProblem(layer: l, "LiSA parameters were fitted for layer \(p.layer)"))
                } else if l == 0 {
                    problems.append(PlanProblem(layer: 0, "layer 0 cannot be LiSA (it has no previous layer)"))
                } else if case .shared = sources[l - 1] {
                    problems.append(PlanProblem(layer: l, "is LiSA but layer \(l - 1) borrows its attention (Shared Attention); the previous layer of a LiSA layer must compute its own or be LiSA"))
                } else {
                    emitsLog[l - 1] = true
                }
                continue
            }
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
        for l in 0..<n where emits[l] == .probabilities && emitsLog[l] {
            problems.append(PlanProblem(layer: l, "is both a Shared Attention source and the input of LiSA layer \(l + 1); a layer can feed one method"))
        }
        if layouts.count == n { problems += headLayoutProblems(layouts, kvHeads: kvHeads) }
        guard problems.isEmpty else { throw SharingPlanError(source: "layer specs", problems: problems) }
        return (0..<n).map { LayerSpec(scores: sources[$0], heads: layouts[$0], emits: emits[$0], emitsLogProbabilities: emitsLog[$0]) }
    }

    /// A group reads its own unit or one of an earlier layer that keeps its own weights (so every
    /// slice read is an original one, stored once).
    static func headLayoutProblems(_ layouts: [HeadLayout], kvHeads: Int) -> [PlanProblem] {
        var problems: [PlanProblem] = []
        for (l, layout) in layouts.enumerated() {
            guard layout.sources.count == kvHeads else {
                problems.append(PlanProblem(layer: l, "head layout has \(layout.sources.count) entries for \(kvHeads) KV groups"))
                continue
            }
            for (g, source) in layout.sources.enumerated() where source != WeightUnit(layer: l, group: g) {
                let unit = "group \(g) reads the weights of \(source)"
                if source.layer < 0 || source.layer >= layouts.count || source.group < 0 || source.group >= kvHeads {
                    problems.append(PlanProblem(layer: l, "\(unit), out of range (layers 0..<\(layouts.count), groups 0..<\(kvHeads))"))
                } else if source.layer >= l {
                    problems.append(PlanProblem(layer: l, "\(unit), which is not in an earlier layer"))
                } else if layouts[source.layer].sources.indices.contains(source.group),
                          layouts[source.layer].sources[source.group] != source {
                    problems.append(PlanProblem(layer: l, "\(unit), which itself reads \(layouts[source.layer].sources[source.group]); point it at a unit that keeps its own weights"))
                }
            }
        }
        return problems
    }
}

/// One KV group of one layer: the unit of head-wise sharing. Its weight slices are the Q rows of
/// its query heads, its K and V rows and the matching columns of the output projection.
public struct WeightUnit: Hashable, Comparable, Codable, Sendable, CustomStringConvertible {
    public var layer: Int
    public var group: Int
    public init(layer: Int, group: Int) { self.layer = layer; self.group = group }
    public static func < (a: WeightUnit, b: WeightUnit) -> Bool { (a.layer, a.group) < (b.layer, b.group) }
    public var description: String { "layer \(layer) group \(group)" }
}

/// Which unit's weight slices each KV group of a layer reads. The identity is every group reading
/// its own; head-wise sharing points a group at a unit of an earlier layer, whose slices are then
/// stored once for both.
public struct HeadLayout: Equatable, Sendable {
    /// sources[g] = the unit whose weights group g of this layer reads.
    public let sources: [WeightUnit]

    public init(sources: [WeightUnit]) { self.sources = sources }

    public static func identity(layer: Int, kvHeads: Int) -> HeadLayout {
        HeadLayout(sources: (0..<kvHeads).map { WeightUnit(layer: layer, group: $0) })
    }

    /// Whether every group of layer `layer` reads its own slices.
    public func isIdentity(layer: Int) -> Bool {
        sources.enumerated().allSatisfy { $0.element == WeightUnit(layer: layer, group: $0.offset) }
    }

    /// Groups of layer `layer` that read another unit's slices.
    public func sharedGroups(layer: Int) -> [Int] {
        sources.indices.filter { sources[$0] != WeightUnit(layer: layer, group: $0) }
    }
}

/// The streams of one layer's KV cache and their row sizes (float32 elements per position).
public struct CacheSpec: Equatable, Sendable {
    public enum Stream: String, Equatable, Sendable {
        case keys = "K"
        case values = "V"
        /// A LiSA layer's rotated low-rank keys k_r (kvHeads · rank per position).
        case lowRankKeys = "Kr"
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
