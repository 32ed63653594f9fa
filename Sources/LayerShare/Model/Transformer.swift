import Foundation
import ModelFormats

/// What logits a forward call returns.
public enum LogitsRequest {
    case none
    case last
    case all
}

/// The Llama decoder, written once against `InferenceBackend`:
/// embed → L × [RMSNorm → attention → residual → RMSNorm → SwiGLU MLP → residual] → RMSNorm → LM head.
public final class Transformer<Backend: InferenceBackend> {
    public let backend: Backend
    public let hyper: LlamaHyperParameters
    public let capacity: Int
    public let maxChunk: Int
    /// How each layer computes attention (from the sharing plan; all `.own` without one).
    public let specs: [LayerSpec]
    /// Tokens already in the KV cache.
    public private(set) var position = 0

    /// One layer's weights. The attention input projection is Q, K and V stacked into one matrix, or
    /// V alone where the scores come from elsewhere (`LayerSpec.projections`); the FFN gate and up
    /// rows are stacked too: one product each instead of three and two.
    struct LayerWeights {
        let attnNorm: Backend.Weight
        let attnInput: Backend.Weight
        let o: Backend.Weight
        let ffnNorm: Backend.Weight
        let gateUp: Backend.Weight
        let down: Backend.Weight
        /// Gemma (`ArchitectureOptions`): per-head Q/K norms and the norms of the block outputs.
        let qNorm: Backend.Weight?, kNorm: Backend.Weight?
        let postAttentionNorm: Backend.Weight?, postFFNNorm: Backend.Weight?
        /// Qwen2: the biases of the attention input's rows ([q; k; v], or v alone), added before RoPE.
        let inputBias: Backend.Weight?
    }

    /// What a layer hands to the layers that read its attention (`LayerSpec.emits`): its rotated
    /// queries, so a reader's prefill recomputes softmax(Q·Kᵀ) with this layer's K cache against its
    /// own V (no T×T matrix), and at decode its probability rows [heads, capacity].
    struct EmittedAttention {
        let queries: Backend.Tensor
        let probabilities: Backend.Tensor
    }

    let embedding: Backend.Weight
    let outputNorm: Backend.Weight
    let lmHead: Backend.Weight
    let layers: [LayerWeights]
    let caches: [Backend.Cache]
    /// Per layer: what it emits for later layers, nil where nothing reads it.
    let emitted: [EmittedAttention?]
    /// The LiSA layers' weights and the log-probability rows passed between layers.
    let lisa: LiSAState<Backend>

    // Activations, sized for `maxChunk` rows. `x` is the residual stream; the norms, RoPE, the
    // residual adds and SwiGLU happen inside `backend.product` (fused where the backend can).
    let x: Backend.Tensor
    let q: Backend.Tensor, v: Backend.Tensor, attn: Backend.Tensor, lastRow: Backend.Tensor
    let gate: Backend.Tensor, logits: Backend.Tensor
    /// With QK-norm or biases: the stacked [q | k | v] rows, biased and normalised before RoPE. With post-norms: a block's
    /// output before and after its norm.
    let qkv: Backend.Tensor?, blockOut: Backend.Tensor?, blockNormed: Backend.Tensor?

    /// Bytes of KV cache held on the backend.
    public let kvCacheBytes: Int

    public init(backend: Backend, weights source: WeightSource, capacity: Int, maxChunk: Int = 128,
                specs: [LayerSpec]? = nil, progress: ((Int, Int) -> Void)? = nil) throws {
        let h = source.hyper
        try h.validate()
        self.backend = backend
        self.hyper = h
        self.capacity = capacity
        let specs = specs ?? LayerSpec.standard(layers: h.layers, kvHeads: h.kvHeads)
        try Self.check(specs, hyper: h)
        self.specs = specs
        guard capacity > 0 else { throw ModelLoadError("context length must be positive") }
        var chunk = max(1, min(maxChunk, capacity))
        if specs.contains(where: \.emitsLogProbabilities) {
            chunk = min(chunk, try LiSAState<Backend>.chunkLimit(heads: h.heads, capacity: capacity, maxTensorBytes: backend.maxTensorBytes))
        }
        self.maxChunk = chunk

        typealias N = LlamaTensorName
        embedding = try backend.loadWeight(source.weight(N.tokenEmbedding))
        outputNorm = try backend.loadWeight(source.weight(N.outputNorm))
        if let out = try source.optionalWeight(N.output) {
            lmHead = try backend.loadWeight(out)
        } else {
            lmHead = embedding
        }
        var layers: [LayerWeights] = []
        var caches: [Backend.Cache] = []
        var kvBytes = 0
        let attention = try Self.attentionWeights(specs: specs, source: source, backend: backend)
        let o = h.options
        if o.qkvBias, !HeadSharedWeights.composedLayers(specs).isEmpty {
            throw ModelLoadError("head-wise sharing is not supported for models with Q/K/V biases")
        }
        func optional(_ wanted: Bool, _ name: String) throws -> Backend.Weight? {
            wanted ? try backend.loadWeight(source.weight(name)) : nil
        }
        for (l, spec) in specs.enumerated() {
            progress?(l, h.layers)
            layers.append(LayerWeights(
                attnNorm: try backend.loadWeight(source.weight(N.attnNorm(l))),
                attnInput: attention[l].input,
                o: attention[l].output,
                ffnNorm: try backend.loadWeight(source.weight(N.ffnNorm(l))),
                gateUp: try backend.loadStacked([source.weight(N.ffnGate(l)), source.weight(N.ffnUp(l))], label: "blk.\(l).ffn_gate_up"),
                down: try backend.loadWeight(source.weight(N.ffnDown(l))),
                qNorm: try optional(o.qkNorm && spec.scores == .own, N.attnQNorm(l)),
                kNorm: try optional(o.qkNorm && spec.scores == .own, N.attnKNorm(l)),
                postAttentionNorm: try optional(o.postNorms, N.postAttentionNorm(l)),
                postFFNNorm: try optional(o.postNorms, N.postFFNNorm(l)),
                inputBias: o.qkvBias ? try Self.inputBias(layer: l, projections: spec.projections, source: source, backend: backend) : nil))
            let cache = spec.cache(for: h)
            caches.append(try backend.makeCache(cache, capacity: capacity, label: "layer \(l)"))
            kvBytes += capacity * cache.bytesPerToken
        }
        progress?(h.layers, h.layers)
        self.layers = layers
        self.caches = caches
        kvCacheBytes = kvBytes

        let rows = self.maxChunk
        x = try backend.makeTensor(rows * h.hiddenSize, label: "x")
        q = try backend.makeTensor(rows * h.qSize, label: "q")
        v = try backend.makeTensor(rows * h.kvSize, label: "v")
        attn = try backend.makeTensor(rows * h.qSize, label: "attn")
        lastRow = try backend.makeTensor(h.hiddenSize, label: "last row")
        gate = try backend.makeTensor(rows * h.ffnSize, label: "gate")
        logits = try backend.makeTensor(rows * h.vocabSize, label: "logits")
        qkv = o.qkNorm || o.qkvBias ? try backend.makeTensor(rows * (h.qSize + 2 * h.kvSize), label: "qkv") : nil
        blockOut = o.postNorms ? try backend.makeTensor(rows * h.hiddenSize, label: "block output") : nil
        blockNormed = o.postNorms ? try backend.makeTensor(rows * h.hiddenSize, label: "block output normed") : nil
        emitted = try specs.enumerated().map { l, spec in
            guard spec.emits == .probabilities else { return nil }
            return EmittedAttention(queries: try backend.makeTensor(rows * h.qSize, label: "queries of layer \(l)"),
                                    probabilities: try backend.makeTensor(h.heads * capacity, label: "probabilities of layer \(l)"))
        }
        lisa = try LiSAState(specs: specs, hyper: h, backend: backend, capacity: capacity, rows: rows)
    }

    /// Specs the forward can run: one per layer, emissions matching their readers.
    static func check(_ specs: [LayerSpec], hyper h: LlamaHyperParameters) throws {
        guard specs.count == h.layers else {
            throw ModelLoadError("plan has \(specs.count) layer specs, model has \(h.layers) layers")
        }
        let resolved = try LayerSpec.resolve(specs.map(\.scores), heads: specs.map(\.heads), kvHeads: h.kvHeads)
        func emission(_ s: LayerSpec) -> String {
            let parts = [s.emits == .probabilities ? "probabilities" : nil, s.emitsLogProbabilities ? "log-probabilities" : nil].compactMap { $0 }
            return parts.isEmpty ? "nothing" : parts.joined(separator: " and ")
        }
        for (l, (spec, expected)) in zip(specs, resolved).enumerated() where emission(spec) != emission(expected) {
            throw ModelLoadError("layer \(l) emits \(emission(spec)) but its readers need \(emission(expected)) (build specs with LayerSpec.resolve)")
        }
        try checkLiSA(specs, hyper: h)
    }

    /// Forgets the cached context.
    public func reset() { position = 0 }

    /// Forgets everything after the first `newPosition` cached tokens (later steps overwrite them).
    public func rewind(to newPosition: Int) throws {
        guard newPosition >= 0, newPosition <= position else {
            throw ModelLoadError("cannot rewind to \(newPosition): \(position) tokens are cached")
        }
        position = newPosition
    }

    /// Runs `tokens` at the current position (in chunks of `maxChunk`), appending them to the cache.
    /// Returns the logits asked for, row-major [rows, vocab]. `hidden` receives the residual stream
    /// after each block (layer index, rows × hidden), for layer-by-layer comparisons.
    @discardableResult
    public func forward(_ tokens: [Int], logits request: LogitsRequest = .last,
                        hidden: ((Int, [Float]) -> Void)? = nil,
                        logitsSink: ((Int, [Float]) -> Void)? = nil) throws -> [Float] {
        guard !tokens.isEmpty else { return [] }
        guard position + tokens.count <= capacity else {
            throw ModelLoadError("context full: \(position) cached + \(tokens.count) new tokens exceed the context length \(capacity) (raise --ctx)")
        }
        for (i, t) in tokens.enumerated() where t < 0 || t >= hyper.vocabSize {
            throw ModelLoadError("token id \(t) at index \(i) is outside the vocabulary 0..<\(hyper.vocabSize)")
        }
        var result: [Float] = []
        var start = 0
        while start < tokens.count {
            let n = min(maxChunk, tokens.count - start)
            let isLast = start + n == tokens.count
            let chunkRequest: LogitsRequest = request == .all ? .all : (request == .last && isLast ? .last : .none)
            let rows = try step(Array(tokens[start..<start + n]), request: chunkRequest, hidden: hidden)
            if let logitsSink, request == .all {
                logitsSink(start, rows)
            } else {
                result += rows
            }
            start += n
        }
        return result
    }

    private func step(_ tokens: [Int], request: LogitsRequest, hidden: ((Int, [Float]) -> Void)?) throws -> [Float] {
        let h = hyper
        let n = tokens.count
        let start = position
        backend.setGroup("embedding")
        try backend.embed(embedding, tokens: tokens, into: x)
        let o = h.options
        if o.embeddingScale != 1 { try backend.scale(x, by: o.embeddingScale, count: n * h.hiddenSize) }
        let shape = AttentionShape(heads: h.heads, kvHeads: h.kvHeads, headDim: h.headDim)
        for (l, spec) in specs.enumerated() {
            backend.setGroup("layer \(l)")
            let w = layers[l], cache = caches[l]
            let attnNorm = FusedInput.rmsNorm(w.attnNorm, eps: h.rmsEps)
            let emits = emitted[l]
            // The projections the score source needs, written into this layer's cache.
            let scores: AttentionScores<Backend.Tensor, Backend.Cache>
            switch spec.scores {
            case .own:
                let queries = emits?.queries ?? q
                let rope = RopeIntoCache(heads: h.heads, kvHeads: h.kvHeads, headDim: h.headDim, startPosition: start,
                                         theta: o.ropeTheta(layer: l, global: h.ropeTheta), divisors: h.ropeDivisors(layer: l),
                                         layout: h.ropeLayout, cache: cache)
                if let qkv, w.inputBias != nil || w.qNorm != nil {
                    try storedQKV(w, into: qkv, rows: n, input: attnNorm, queries: queries, rope)
                } else {
                    try backend.product(w.attnInput, x, rows: n, input: attnNorm, output: .ropeIntoCache(queries: queries, rope), label: "attn_qkv")
                }
                scores = .queries(queries, keys: cache)
            case let .shared(src):
                try backend.product(w.attnInput, x, rows: n, input: attnNorm, output: .store(v), label: "attn_v")
                if let bias = w.inputBias { try backend.addBias(v, bias: bias, rows: n) }
                try backend.store(v, offset: 0, into: .values, of: cache, rows: n, startPosition: start)
                let source = emitted[src]!
                scores = n == 1 ? .probabilities(source.probabilities) : .queries(source.queries, keys: caches[src])
            case .lisa:
                scores = try lisaScores(layer: l, weights: w, cache: cache, rows: n, startPosition: start, input: attnNorm)
            }
            var emit: AttentionEmission<Backend.Tensor> = n == 1 ? emits.map { .probabilities($0.probabilities) } ?? .nothing : .nothing
            if spec.emitsLogProbabilities { emit = .logProbabilities(lisa.logs[l % 2], stride: capacity) }
            // A shared layer's scores were windowed as its source's.
            let window: Int?
            if case let .shared(src) = spec.scores { window = o.window(layer: src) } else { window = o.window(layer: l) }
            try backend.attention(AttentionOp(scores: scores, values: cache, out: attn, rows: n, startPosition: start,
                                              shape: shape, emit: emit, scale: o.attentionScale, window: window))
            try residual(w.o, attn, rows: n, postNorm: w.postAttentionNorm, nextNorm: w.ffnNorm, label: "attn_output")
            let gated: FusedOutput<Backend.Tensor, Backend.Weight, Backend.Cache> = o.activation == .geluTanh ? .geglu(gate) : .swiglu(gate)
            try backend.product(w.gateUp, x, rows: n, input: .rmsNorm(w.ffnNorm, eps: h.rmsEps), output: gated, label: "ffn_gate_up")
            let nextNorm = l + 1 < h.layers ? layers[l + 1].attnNorm : outputNorm
            try residual(w.down, gate, rows: n, postNorm: w.postFFNNorm, nextNorm: nextNorm, label: "ffn_down")
            if let hidden { hidden(l, try backend.read(x, offset: 0, count: n * h.hiddenSize)) }
        }
        position += n
        backend.setGroup("output")
        let outputNorm = FusedInput.rmsNorm(self.outputNorm, eps: h.rmsEps)
        switch request {
        case .none:
            try backend.finish()
            return []
        case .last:
            // Only the last row goes through the output norm and the LM head.
            let row: Backend.Tensor
            if n == 1 {
                row = x
            } else {
                try backend.copyRow(x, row: n - 1, rowSize: h.hiddenSize, into: lastRow)
                row = lastRow
            }
            try backend.product(lmHead, row, rows: 1, input: outputNorm, output: .store(logits), label: "lm_head")
            return try backend.read(logits, offset: 0, count: h.vocabSize)
        case .all:
            try backend.product(lmHead, x, rows: n, input: outputNorm, output: .store(logits), label: "lm_head")
            return try backend.read(logits, offset: 0, count: n * h.vocabSize)
        }
    }
}

extension Transformer {
    /// x += W·input, or with a post-norm x += rmsnorm(W·input) · postNorm (Gemma).
    func residual(_ weight: Backend.Weight, _ input: Backend.Tensor, rows n: Int, postNorm: Backend.Weight?, nextNorm: Backend.Weight,
                  label: String) throws {
        guard let postNorm, let blockOut, let blockNormed else {
            try backend.product(weight, input, rows: n, input: .plain, output: .accumulate(x, nextNorm: nextNorm), label: label)
            return
        }
        try backend.product(weight, input, rows: n, input: .plain, output: .store(blockOut), label: label)
        try backend.rmsnorm(blockOut, weight: postNorm, into: blockNormed, rows: n, dim: hyper.hiddenSize, eps: hyper.rmsEps)
        try backend.add(x, blockNormed, into: x, count: n * hyper.hiddenSize)
    }

    /// The Q|K|V product stored, then its biases added (Qwen2) and each Q and K head RMS-normalised
    /// (Gemma's QK-norm), then rotated into `queries` and the cache.
    func storedQKV(_ w: LayerWeights, into qkv: Backend.Tensor, rows n: Int,
                   input: FusedInput<Backend.Weight>, queries: Backend.Tensor, _ r: RopeIntoCache<Backend.Cache>) throws {
        let h = hyper, rowSize = h.qSize + 2 * h.kvSize
        try backend.product(w.attnInput, x, rows: n, input: input, output: .store(qkv), label: "attn_qkv")
        if let bias = w.inputBias { try backend.addBias(qkv, bias: bias, rows: n) }
        if let qNorm = w.qNorm, let kNorm = w.kNorm {
            try backend.headNorm(qkv, rows: n, rowSize: rowSize, offset: 0, heads: h.heads, headDim: h.headDim, weight: qNorm, eps: h.rmsEps)
            try backend.headNorm(qkv, rows: n, rowSize: rowSize, offset: h.qSize, heads: h.kvHeads, headDim: h.headDim, weight: kNorm, eps: h.rmsEps)
        }
        try backend.ropeIntoCache(qkv, rows: n, heads: h.heads, kvHeads: h.kvHeads, headDim: h.headDim, startPosition: r.startPosition,
                                  theta: r.theta, divisors: r.divisors, layout: r.layout, cache: r.cache)
        try backend.splitColumns(qkv, rows: n, rowSize: rowSize, into: [(0, h.qSize, queries)])
    }
}

/// A model-level error with a plain message.
public struct ModelLoadError: Error, CustomStringConvertible {
    public let description: String
    public init(_ message: String) { description = message }
}
