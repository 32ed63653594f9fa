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
    /// Gemma-style departures from Llama (`.llama` for Llama itself).
    public var options: ArchitectureOptions
    /// Long-context RoPE scaling (Llama 3.1's per-pair factors, linear); `.none` for plain RoPE.
    public var ropeScaling: RopeScaling

    public init(architecture: String = "llama", layers: Int, hiddenSize: Int, ffnSize: Int, heads: Int, kvHeads: Int,
                headDim: Int, vocabSize: Int, rmsEps: Float, ropeTheta: Float, contextLength: Int,
                tiedEmbeddings: Bool, ropeLayout: RopeLayout, options: ArchitectureOptions = .llama,
                ropeScaling: RopeScaling = .none) {
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
        self.options = options
        self.ropeScaling = ropeScaling
    }

    /// Width of the concatenated query heads.
    public var qSize: Int { heads * headDim }
    /// Width of the concatenated key (or value) heads.
    public var kvSize: Int { kvHeads * headDim }
    /// Query heads sharing one KV head.
    public var groupSize: Int { heads / kvHeads }

    /// Per-pair divisors of layer `l`'s RoPE frequencies, nil for plain RoPE. Layers with their own
    /// local base (Gemma 3's sliding-window layers) are never scaled, as in llama.cpp
    /// (`rope_freq_scale_train_swa` = 1).
    public func ropeDivisors(layer l: Int) -> [Float]? {
        if options.localRopeTheta != nil, options.isLocal(l) { return nil }
        return ropeScaling.divisors(pairs: headDim / 2)
    }

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
        if let w = options.slidingWindow {
            try check("slidingWindow", w, 1 << 24)
        }
        if let t = options.localRopeTheta, !(t.isFinite && t > 1) {
            throw ModelError.invalidHyperParameter(name: "localRopeTheta", value: "\(t)", reason: "must be a finite number > 1")
        }
        guard options.embeddingScale.isFinite, options.embeddingScale > 0 else {
            throw ModelError.invalidHyperParameter(name: "embeddingScale", value: "\(options.embeddingScale)", reason: "must be finite and positive")
        }
        try ropeScaling.validate(pairs: headDim / 2, factorSource: "ropeScaling.linearFactor", factorsSource: "ropeScaling.frequencyFactors")
        if let s = options.attentionScale, !(s.isFinite && s > 0) {
            throw ModelError.invalidHyperParameter(name: "attentionScale", value: "\(s)", reason: "must be finite and positive")
        }
        guard options.globalLayerPeriod >= 0, options.globalLayerPeriod <= 1024 else {
            throw ModelError.invalidHyperParameter(name: "globalLayerPeriod", value: "\(options.globalLayerPeriod)", reason: "must be in 0...1024")
        }
    }
}

extension LlamaHyperParameters {
    /// Architectures read from GGUF metadata.
    public static let supportedArchitectures = ["llama", "qwen2", "gemma3"]

    /// Reads `llama.*` (or `qwen2.*`, `gemma3.*`) keys. `tiedEmbeddings` is true when the file has no
    /// `output.weight`; Q/K/V biases are used when the file has any (Qwen2; then every layer needs all three).
    public init(gguf: GGUFFile) throws {
        let arch = try gguf.optionalString("general.architecture") ?? "llama"
        guard Self.supportedArchitectures.contains(arch) else { throw ModelError.unsupportedArchitecture(arch) }
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
        let ropeScaling = try RopeScaling(gguf: gguf, architecture: arch, headDim: headDim)
        // Biases other than Q/K/V's would be ignored, silently changing the model.
        if let bias = gguf.tensors.first(where: { $0.name.hasSuffix(".bias") && !Self.isQKVBias($0.name) }) {
            throw ModelError.invalidHyperParameter(name: bias.name, value: "present", reason: "only Q/K/V biases are supported")
        }
        var options = arch == "gemma3" ? try Self.gemma3Options(gguf: gguf, hidden: hidden, headDim: headDim) : .llama
        options.qkvBias = gguf.tensors.contains { Self.isQKVBias($0.name) }
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
                  // llama.cpp permutes Llama's Q/K rows at conversion, not Qwen2's or Gemma's (NEOX RoPE).
                  ropeLayout: arch == "llama" ? .adjacentPairs : .halfRotation,
                  options: options, ropeScaling: ropeScaling)
        try validate()
    }

    /// `blk.N.attn_q.bias`, `attn_k.bias` or `attn_v.bias`.
    public static func isQKVBias(_ name: String) -> Bool {
        guard name.hasPrefix("blk.") else { return false }
        return [".attn_q.bias", ".attn_k.bias", ".attn_v.bias"].contains { name.hasSuffix($0) }
    }
}

extension LlamaHyperParameters {
    /// Gemma 3 as llama.cpp runs it: embeddings scaled by √hidden, QK-norm, post-norms, GeGLU, Q·Kᵀ
    /// scaled by 1/√headDim (`query_pre_attn_scalar` = head dim; llama.cpp's 27B exception has 62
    /// layers), sliding-window layers with a global one every sixth, local RoPE base 10 000, NEOX
    /// (half-split) RoPE. Final logit soft-capping is refused: Gemma 3 has none, and a file asking
    /// for it would be computed wrongly.
    static func gemma3Options(gguf: GGUFFile, hidden: Int, headDim: Int) throws -> ArchitectureOptions {
        let p = "gemma3."
        for key in ["final_logit_softcapping", "attn_logit_softcapping"] {
            if let cap = try gguf.optionalFloat(p + key), cap != 0 {
                throw ModelError.invalidHyperParameter(name: p + key, value: "\(cap)", reason: "logit soft-capping is not supported")
            }
        }
        let window = try gguf.optionalInt(p + "attention.sliding_window")
        let layers = try gguf.int(p + "block_count")
        let heads = try gguf.int(p + "attention.head_count")
        let scale = layers == 62 ? 1 / Float(hidden / max(heads, 1)).squareRoot() : 1 / Float(headDim).squareRoot()
        return ArchitectureOptions(embeddingScale: Float(hidden).squareRoot(), qkNorm: true, postNorms: true, activation: .geluTanh,
                                   attentionScale: scale, slidingWindow: window, globalLayerPeriod: 6, localRopeTheta: 10000)
    }
}
