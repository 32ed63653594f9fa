/// How the rows of the Q and K projections pair up the dimensions that RoPE rotates together.
public enum RopeLayout: String, Sendable, Codable {
    /// GGUF / llama.cpp: Q/K rows were permuted at conversion so that pairs are (2i, 2i+1).
    case adjacentPairs
    /// Hugging Face: pairs are (i, i + headDim/2) ("rotate_half").
    case halfRotation
}

/// Shape and numeric constants of a Llama-family decoder.
public struct LlamaHyperParameters: Sendable, Codable, Equatable {
    public var architecture: String
    public var layers: Int
    public var hiddenSize: Int
    public var ffnSize: Int
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var vocabSize: Int
    public var rmsEps: Float
    public var ropeTheta: Float
    public var contextLength: Int
    public var tiedEmbeddings: Bool
    public var ropeLayout: RopeLayout

    public init(architecture: String = "llama", layers: Int, hiddenSize: Int, ffnSize: Int, heads: Int, kvHeads: Int,
                headDim: Int, vocabSize: Int, rmsEps: Float, ropeTheta: Float, contextLength: Int,
                tiedEmbeddings: Bool, ropeLayout: RopeLayout) {
        self.architecture = architecture
        self.layers = layers
        self.hiddenSize = hiddenSize
        self.ffnSize = ffnSize
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.vocabSize = vocabSize
        self.rmsEps = rmsEps
        self.ropeTheta = ropeTheta
        self.contextLength = contextLength
        self.tiedEmbeddings = tiedEmbeddings
        self.ropeLayout = ropeLayout
    }

    /// Width of the concatenated query heads.
    public var qSize: Int { heads * headDim }
    /// Width of the concatenated key (or value) heads.
    public var kvSize: Int { kvHeads * headDim }
    /// Query heads sharing one KV head.
    public var groupSize: Int { heads / kvHeads }

    /// Rejects zero or absurd sizes and inconsistent head counts, naming the field.
    public func validate() throws {
        func check(_ name: String, _ v: Int, _ max: Int) throws {
            guard v > 0 else { throw ModelError.invalidHyperParameter(name: name, value: "\(v)", reason: "must be positive") }
            guard v <= max else {
                throw ModelError.invalidHyperParameter(name: name, value: "\(v)", reason: "larger than the supported maximum \(max)")
            }
        }
        try check("layers", layers, 1024)
        try check("hiddenSize", hiddenSize, 1 << 17)
        try check("ffnSize", ffnSize, 1 << 20)
        try check("heads", heads, 1024)
        try check("kvHeads", kvHeads, 1024)
        try check("headDim", headDim, 1024)
        try check("vocabSize", vocabSize, 1 << 23)
        try check("contextLength", contextLength, 1 << 24)
        guard heads % kvHeads == 0 else {
            throw ModelError.invalidHyperParameter(name: "kvHeads", value: "\(kvHeads)",
                                                   reason: "heads (\(heads)) is not divisible by kvHeads")
        }
        guard headDim % 2 == 0 else {
            throw ModelError.invalidHyperParameter(name: "headDim", value: "\(headDim)", reason: "RoPE needs an even head dimension")
        }
        guard rmsEps.isFinite, rmsEps > 0, rmsEps < 1 else {
            throw ModelError.invalidHyperParameter(name: "rmsEps", value: "\(rmsEps)", reason: "must be in (0, 1)")
        }
        guard ropeTheta.isFinite, ropeTheta > 1 else {
            throw ModelError.invalidHyperParameter(name: "ropeTheta", value: "\(ropeTheta)", reason: "must be a finite number > 1")
        }
    }
}

extension LlamaHyperParameters {
    /// Reads `llama.*` keys. `tiedEmbeddings` is true when the file has no `output.weight`.
    public init(gguf: GGUFFile) throws {
        let arch = try gguf.optionalString("general.architecture") ?? "llama"
        guard arch == "llama" else { throw ModelError.unsupportedArchitecture(arch) }
        let p = arch + "."
        let hidden = try gguf.int(p + "embedding_length")
        let heads = try gguf.int(p + "attention.head_count")
        guard heads > 0 else {
            throw ModelError.invalidHyperParameter(name: p + "attention.head_count", value: "\(heads)", reason: "must be positive")
        }
        let kvHeads = try gguf.optionalInt(p + "attention.head_count_kv") ?? heads
        let ropeDims = try gguf.optionalInt(p + "rope.dimension_count")
        var headDim = try gguf.optionalInt(p + "attention.key_length") ?? ropeDims ?? 0
        if headDim == 0 {
            guard hidden % heads == 0 else {
                throw ModelError.invalidHyperParameter(name: p + "embedding_length", value: "\(hidden)",
                                                       reason: "not divisible by head_count \(heads)")
            }
            headDim = hidden / heads
        }
        if let v = try gguf.optionalInt(p + "attention.value_length"), v != headDim {
            throw ModelError.invalidHyperParameter(name: p + "attention.value_length", value: "\(v)",
                                                   reason: "differs from key length \(headDim)")
        }
        if let r = ropeDims, r != headDim {
            throw ModelError.invalidHyperParameter(name: p + "rope.dimension_count", value: "\(r)",
                                                   reason: "partial rotary embeddings are not supported (head dim \(headDim))")
        }
        // The engine implements plain RoPE; scaled variants would silently give wrong results.
        if let scaling = try gguf.optionalString(p + "rope.scaling.type"), scaling != "none" {
            throw ModelError.invalidHyperParameter(name: p + "rope.scaling.type", value: scaling, reason: "RoPE scaling is not supported")
        }
        if gguf.tensor(named: "rope_freqs.weight") != nil {
            throw ModelError.invalidHyperParameter(name: "rope_freqs.weight", value: "present", reason: "RoPE frequency factors are not supported")
        }
        var vocab = try gguf.optionalInt(p + "vocab_size")
        if vocab == nil, let toks = gguf.metadata["tokenizer.ggml.tokens"]?.array { vocab = toks.count }
        if vocab == nil, let emb = gguf.tensor(named: "token_embd.weight"), emb.shape.count == 2 { vocab = emb.shape[1] }
        guard let vocabSize = vocab else { throw GGUFError.missingKey(p + "vocab_size") }

        self.init(architecture: arch,
                  layers: try gguf.int(p + "block_count"),
                  hiddenSize: hidden,
                  ffnSize: try gguf.int(p + "feed_forward_length"),
                  heads: heads, kvHeads: kvHeads, headDim: headDim, vocabSize: vocabSize,
                  rmsEps: try gguf.float(p + "attention.layer_norm_rms_epsilon"),
                  ropeTheta: try gguf.optionalFloat(p + "rope.freq_base") ?? 10000,
                  contextLength: try gguf.int(p + "context_length"),
                  tiedEmbeddings: gguf.tensor(named: "output.weight") == nil,
                  ropeLayout: .adjacentPairs)
        try validate()
    }
}
