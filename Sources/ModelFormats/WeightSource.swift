/// A tensor handed to the engine: raw bytes in the file's own encoding, plus the object that
/// owns the mapping so the bytes stay valid as long as this value is around.
public struct WeightTensor: @unchecked Sendable {
    public let name: String
    public let type: GGMLType
    /// GGUF order: `[cols (inputs), rows (outputs)]` for matrices, `[n]` for vectors.
    public let shape: [Int]
    public let data: UnsafeRawBufferPointer
    /// Keeps the memory mapping alive.
    public let owner: AnyObject

    public init(name: String, type: GGMLType, shape: [Int], data: UnsafeRawBufferPointer, owner: AnyObject) {
        self.name = name
        self.type = type
        self.shape = shape
        self.data = data
        self.owner = owner
    }

    /// Row length (elements per row, `shape[0]`).
    public var cols: Int { shape.first ?? 0 }
    /// Number of rows (product of the outer dimensions; 1 for vectors).
    public var rows: Int { shape.dropFirst().reduce(1, *) }
    public var elementCount: Int { shape.reduce(1, *) }

    /// Dequantizes row `r` into float32 (reference path; slow for big tensors).
    public func row(_ r: Int) -> [Float] {
        precondition(r >= 0 && r < rows, "row \(r) out of range 0..<\(rows) in \(name)")
        let rowBytes = type.rowBytes(cols)!
        return Dequantize.row(type, data.baseAddress! + r * rowBytes, count: cols)
    }

    /// Dequantizes the whole tensor (row-major, rows of `cols`).
    public func toFloat() -> [Float] {
        let rowBytes = type.rowBytes(cols)!
        return [Float](unsafeUninitializedCapacity: elementCount) { buf, n in
            for r in 0..<rows {
                Dequantize.row(type, data.baseAddress! + r * rowBytes, count: cols, into: buf.baseAddress! + r * cols)
            }
            n = elementCount
        }
    }
}

/// A model's weights in canonical GGUF names, whatever the file format.
public protocol WeightSource: AnyObject {
    var hyper: LlamaHyperParameters { get }
    /// All tensor names available, canonical where a mapping is known.
    var tensorNames: [String] { get }
    /// Throws `ModelError.missingTensor` when absent.
    func weight(_ name: String) throws -> WeightTensor
    /// Where the layer count comes from, for messages (e.g. `llama.block_count`).
    var layerCountKey: String { get }
}

/// Canonical tensor names of a Llama model.
public enum LlamaTensorName {
    public static let tokenEmbedding = "token_embd.weight"
    public static let outputNorm = "output_norm.weight"
    public static let output = "output.weight"
    public static func attnNorm(_ l: Int) -> String { "blk.\(l).attn_norm.weight" }
    public static func attnQ(_ l: Int) -> String { "blk.\(l).attn_q.weight" }
    public static func attnK(_ l: Int) -> String { "blk.\(l).attn_k.weight" }
    public static func attnV(_ l: Int) -> String { "blk.\(l).attn_v.weight" }
    // Qwen2: biases of the Q, K and V projections.
    public static func attnQBias(_ l: Int) -> String { "blk.\(l).attn_q.bias" }
    public static func attnKBias(_ l: Int) -> String { "blk.\(l).attn_k.bias" }
    public static func attnVBias(_ l: Int) -> String { "blk.\(l).attn_v.bias" }
    public static func attnOutput(_ l: Int) -> String { "blk.\(l).attn_output.weight" }
    public static func ffnNorm(_ l: Int) -> String { "blk.\(l).ffn_norm.weight" }
    public static func ffnGate(_ l: Int) -> String { "blk.\(l).ffn_gate.weight" }
    public static func ffnUp(_ l: Int) -> String { "blk.\(l).ffn_up.weight" }
    public static func ffnDown(_ l: Int) -> String { "blk.\(l).ffn_down.weight" }
    // Gemma: per-head Q/K norms and the norms after the attention and FFN blocks.
    public static func attnQNorm(_ l: Int) -> String { "blk.\(l).attn_q_norm.weight" }
    public static func attnKNorm(_ l: Int) -> String { "blk.\(l).attn_k_norm.weight" }
    public static func postAttentionNorm(_ l: Int) -> String { "blk.\(l).post_attention_norm.weight" }
    public static func postFFNNorm(_ l: Int) -> String { "blk.\(l).post_ffw_norm.weight" }
}

extension WeightSource {
    public var layerCountKey: String { "the layer count" }

    /// The weight, or nil when absent (other errors still throw).
    public func optionalWeight(_ name: String) throws -> WeightTensor? {
        guard tensorNames.contains(name) else { return nil }
        return try weight(name)
    }

    /// Expected GGUF-order shape of every tensor of a Llama model, in load order.
    public func expectedLlamaShapes() -> [(name: String, shape: [Int])] {
        let h = hyper
        typealias N = LlamaTensorName
        var out: [(String, [Int])] = [(N.tokenEmbedding, [h.hiddenSize, h.vocabSize])]
        for l in 0..<h.layers {
            out += [
                (N.attnNorm(l), [h.hiddenSize]),
                (N.attnQ(l), [h.hiddenSize, h.qSize]),
                (N.attnK(l), [h.hiddenSize, h.kvSize]),
                (N.attnV(l), [h.hiddenSize, h.kvSize]),
                (N.attnOutput(l), [h.qSize, h.hiddenSize]),
                (N.ffnNorm(l), [h.hiddenSize]),
                (N.ffnGate(l), [h.hiddenSize, h.ffnSize]),
                (N.ffnUp(l), [h.hiddenSize, h.ffnSize]),
                (N.ffnDown(l), [h.ffnSize, h.hiddenSize]),
            ]
            if h.options.qkvBias { out += [(N.attnQBias(l), [h.qSize]), (N.attnKBias(l), [h.kvSize]), (N.attnVBias(l), [h.kvSize])] }
            if h.options.qkNorm { out += [(N.attnQNorm(l), [h.headDim]), (N.attnKNorm(l), [h.headDim])] }
            if h.options.postNorms { out += [(N.postAttentionNorm(l), [h.hiddenSize]), (N.postFFNNorm(l), [h.hiddenSize])] }
        }
        out.append((N.outputNorm, [h.hiddenSize]))
        if !h.tiedEmbeddings { out.append((N.output, [h.hiddenSize, h.vocabSize])) }
        return out
    }

    /// Checks that every Llama tensor exists with the shape the hyper-parameters imply.
    /// Throws `extraLayers` / `missingLayers` when the tensors' layers disagree with the declared
    /// count (extra ones would be ignored silently), else the first `missingTensor` / `shapeMismatch`.
    public func validateLlamaShapes() throws {
        let layers = Set(tensorNames.compactMap(Self.layerIndex))
        if let last = layers.max(), last >= hyper.layers {
            throw ModelError.extraLayers(found: last, declared: hyper.layers, key: layerCountKey)
        }
        if !layers.contains(hyper.layers - 1) {
            throw ModelError.missingLayers(present: layers.max().map { $0 + 1 } ?? 0, declared: hyper.layers, key: layerCountKey)
        }
        for (name, shape) in expectedLlamaShapes() {
            let w = try weight(name)
            guard w.shape == shape else { throw ModelError.shapeMismatch(tensor: name, expected: shape, actual: w.shape) }
        }
    }

    /// N of a `blk.N.…` name.
    static func layerIndex(_ name: String) -> Int? {
        guard name.hasPrefix("blk.") else { return nil }
        return Int(name.dropFirst(4).prefix { $0 != "." })
    }
}
