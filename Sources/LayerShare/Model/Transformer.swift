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
    public let modes: [LayerMode]
    /// Tokens already in the KV cache.
    public private(set) var position = 0

    /// One layer's weights. Q, K and V rows are stacked into one matrix (V alone for SA layers), and so are
    /// the FFN gate and up rows: one product each instead of three and two.
    struct LayerWeights {
        let attnNorm: Backend.Weight
        let qkv: Backend.Weight?
        let v: Backend.Weight?
        let o: Backend.Weight
        let ffnNorm: Backend.Weight
        let gateUp: Backend.Weight
        let down: Backend.Weight
    }

    let embedding: Backend.Weight
    let outputNorm: Backend.Weight
    let lmHead: Backend.Weight
    let layers: [LayerWeights]
    let caches: [Backend.Cache]

    // Activations, sized for `maxChunk` rows.
    let x: Backend.Tensor, normed: Backend.Tensor
    let q: Backend.Tensor, v: Backend.Tensor, attn: Backend.Tensor, proj: Backend.Tensor
    let gate: Backend.Tensor, up: Backend.Tensor, logits: Backend.Tensor
    /// Outputs of the stacked products: [rows, q|k|v] and [rows, gate|up].
    let qkvOut: Backend.Tensor, gateUpOut: Backend.Tensor
    /// Decode-time probability rows [heads, capacity] per SA source layer, and saved Q for prefill.
    let probabilities: [Int: Backend.Tensor]
    let sourceQueries: [Int: Backend.Tensor]

    /// Bytes of KV cache held on the backend.
    public let kvCacheBytes: Int

    public init(backend: Backend, weights source: WeightSource, capacity: Int, maxChunk: Int = 128,
                modes: [LayerMode]? = nil, progress: ((Int, Int) -> Void)? = nil) throws {
        let h = source.hyper
        try h.validate()
        self.backend = backend
        self.hyper = h
        self.capacity = capacity
        self.maxChunk = max(1, min(maxChunk, capacity))
        let modes = modes ?? Array(repeating: .standard, count: h.layers)
        guard modes.count == h.layers else {
            throw ModelLoadError("plan has \(modes.count) layer modes, model has \(h.layers) layers")
        }
        self.modes = modes
        guard capacity > 0 else { throw ModelLoadError("context length must be positive") }

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
        for l in 0..<h.layers {
            progress?(l, h.layers)
            let shared = !modes[l].storesKeys
            let qkv = shared ? nil : try backend.loadStacked([source.weight(N.attnQ(l)), source.weight(N.attnK(l)), source.weight(N.attnV(l))],
                                                             label: "blk.\(l).attn_qkv")
            layers.append(LayerWeights(
                attnNorm: try backend.loadWeight(source.weight(N.attnNorm(l))),
                qkv: qkv,
                v: shared ? try backend.loadWeight(source.weight(N.attnV(l))) : nil,
                o: try backend.loadWeight(source.weight(N.attnOutput(l))),
                ffnNorm: try backend.loadWeight(source.weight(N.ffnNorm(l))),
                gateUp: try backend.loadStacked([source.weight(N.ffnGate(l)), source.weight(N.ffnUp(l))], label: "blk.\(l).ffn_gate_up"),
                down: try backend.loadWeight(source.weight(N.ffnDown(l)))))
            caches.append(try backend.makeCache(capacity: capacity, rowSize: h.kvSize, storesKeys: !shared, label: "layer \(l)"))
            kvBytes += capacity * h.kvSize * 4 * (shared ? 1 : 2)
        }
        progress?(h.layers, h.layers)
        self.layers = layers
        self.caches = caches
        kvCacheBytes = kvBytes

        let rows = self.maxChunk
        x = try backend.makeTensor(rows * h.hiddenSize, label: "x")
        normed = try backend.makeTensor(rows * h.hiddenSize, label: "normed")
        q = try backend.makeTensor(rows * h.qSize, label: "q")
        v = try backend.makeTensor(rows * h.kvSize, label: "v")
        attn = try backend.makeTensor(rows * h.qSize, label: "attn")
        proj = try backend.makeTensor(rows * h.hiddenSize, label: "proj")
        gate = try backend.makeTensor(rows * h.ffnSize, label: "gate")
        up = try backend.makeTensor(rows * h.ffnSize, label: "up")
        logits = try backend.makeTensor(rows * h.vocabSize, label: "logits")
        qkvOut = try backend.makeTensor(rows * (h.qSize + 2 * h.kvSize), label: "qkv")
        gateUpOut = try backend.makeTensor(rows * 2 * h.ffnSize, label: "gate_up")
        var probabilities: [Int: Backend.Tensor] = [:]
        var sourceQueries: [Int: Backend.Tensor] = [:]
        for case let .sharedAttention(src) in modes where probabilities[src] == nil {
            probabilities[src] = try backend.makeTensor(h.heads * capacity, label: "probabilities of layer \(src)")
            sourceQueries[src] = try backend.makeTensor(rows * h.qSize, label: "queries of layer \(src)")
        }
        self.probabilities = probabilities
        self.sourceQueries = sourceQueries
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
        backend.setGroup("layer 0")
        try backend.rmsnorm(x, weight: layers[0].attnNorm, into: normed, rows: n, dim: h.hiddenSize, eps: h.rmsEps)
        for l in 0..<h.layers {
            // `normed` holds this layer's attention-norm input: from the rmsnorm above for layer 0, else from the
            // residual add fused with this norm at the end of the previous layer (recorded in this layer's group).
            backend.setGroup("layer \(l)")
            let w = layers[l]
            switch modes[l] {
            case .standard:
                let isSource = probabilities[l] != nil
                let qkvSize = h.qSize + 2 * h.kvSize
                try backend.matmul(w.qkv!, normed, into: qkvOut, rows: n, label: "attn_qkv")
                // One dispatch rotates Q in place and writes rotated K and V into the cache.
                try backend.ropeIntoCache(qkvOut, rows: n, heads: h.heads, kvHeads: h.kvHeads, headDim: h.headDim,
                                          startPosition: start, theta: h.ropeTheta, layout: h.ropeLayout, cache: caches[l])
                let queries: Backend.Tensor
                if n == 1 {
                    // One row: attention reads Q in place (the first qSize floats).
                    queries = qkvOut
                } else {
                    queries = isSource ? sourceQueries[l]! : q
                    try backend.splitColumns(qkvOut, rows: n, rowSize: qkvSize, into: [(0, h.qSize, queries)])
                }
                try backend.attention(queries: queries, keys: caches[l], values: caches[l], into: attn, rows: n, startPosition: start,
                                      heads: h.heads, kvHeads: h.kvHeads, headDim: h.headDim,
                                      probabilities: isSource && n == 1 ? probabilities[l] : nil)
            case let .sharedAttention(src):
                try backend.matmul(w.v!, normed, into: v, rows: n, label: "attn_v")
                try backend.store(keys: nil, keyOffset: 0, values: v, valueOffset: 0, cache: caches[l], rows: n, startPosition: start)
                if n == 1 {
                    try backend.applyProbabilities(probabilities[src]!, cache: caches[l], into: attn, context: start + 1,
                                                   heads: h.heads, kvHeads: h.kvHeads, headDim: h.headDim)
                } else {
                    // Prefill: softmax(Q_src K_srcᵀ) V_own without materialising the T×T matrix.
                    try backend.attention(queries: sourceQueries[src]!, keys: caches[src], values: caches[l], into: attn, rows: n,
                                          startPosition: start, heads: h.heads, kvHeads: h.kvHeads, headDim: h.headDim, probabilities: nil)
                }
            }
            try backend.matmul(w.o, attn, into: proj, rows: n, label: "attn_output")
            try backend.addRMSNorm(x, residual: proj, weight: w.ffnNorm, into: normed, rows: n, dim: h.hiddenSize, eps: h.rmsEps)
            try backend.matmul(w.gateUp, normed, into: gateUpOut, rows: n, label: "ffn_gate_up")
            if n == 1 {
                try backend.swiglu(gate: gateUpOut, gateOffset: 0, up: gateUpOut, upOffset: h.ffnSize, into: gate, count: h.ffnSize)
            } else {
                try backend.splitColumns(gateUpOut, rows: n, rowSize: 2 * h.ffnSize, into: [(0, h.ffnSize, gate), (h.ffnSize, h.ffnSize, up)])
                try backend.swiglu(gate: gate, gateOffset: 0, up: up, upOffset: 0, into: gate, count: n * h.ffnSize)
            }
            try backend.matmul(w.down, gate, into: proj, rows: n, label: "ffn_down")
            // The FFN residual add, fused with the next norm: the next layer's attention norm, or the output norm.
            let last = l + 1 == h.layers
            backend.setGroup(last ? "output" : "layer \(l + 1)")
            try backend.addRMSNorm(x, residual: proj, weight: last ? outputNorm : layers[l + 1].attnNorm, into: normed,
                                   rows: n, dim: h.hiddenSize, eps: h.rmsEps)
            if let hidden { hidden(l, try backend.read(x, offset: 0, count: n * h.hiddenSize)) }
        }
        position += n
        switch request {
        case .none:
            try backend.finish()
            return []
        case .last:
            // `normed` holds the output norm of every row; only the last goes through the LM head.
            let lastRow: Backend.Tensor
            if n == 1 {
                lastRow = normed
            } else {
                try backend.copyRow(normed, row: n - 1, rowSize: h.hiddenSize, into: proj)
                lastRow = proj
            }
            try backend.matmul(lmHead, lastRow, into: logits, rows: 1, label: "lm_head")
            return try backend.read(logits, offset: 0, count: h.vocabSize)
        case .all:
            try backend.matmul(lmHead, normed, into: logits, rows: n, label: "lm_head")
            return try backend.read(logits, offset: 0, count: n * h.vocabSize)
        }
    }
}

/// A model-level error with a plain message.
public struct ModelLoadError: Error, CustomStringConvertible {
    public let description: String
    public init(_ message: String) { description = message }
}
