import Foundation

/// `WeightSource` over a Hugging Face checkpoint directory: `config.json` plus one or more
/// `.safetensors` shards (listed by `model.safetensors.index.json` when present). Names are
/// mapped to canonical GGUF names and shapes reported in GGUF order (`[in, out]`).
///
/// Q/K rows stay in the HF layout, so `hyper.ropeLayout == .halfRotation`. Tensor data may be
/// unaligned (safetensors headers have arbitrary length): read it with `loadUnaligned`.
public final class SafetensorsModel: WeightSource {
    public let directory: String
    public let hyper: LlamaHyperParameters
    public let files: [SafetensorsFile]
    /// canonical name → (file index, entry)
    private let index: [String: (Int, SafetensorsFile.Entry)]
    public let tensorNames: [String]

    /// `path` is the checkpoint directory or one `.safetensors` file inside it.
    public convenience init(path: String) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw ModelError.unsupportedFormat(path: path, reason: "no such file or directory")
        }
        let dir = isDir.boolValue ? path : (path as NSString).deletingLastPathComponent
        let configPath = (dir as NSString).appendingPathComponent("config.json")

        var shardNames: [String]
        if !isDir.boolValue {
            shardNames = [(path as NSString).lastPathComponent]
        } else if let indexData = try FileCheck.contentsIfPresent((dir as NSString).appendingPathComponent("model.safetensors.index.json"),
                                                                   "shard index") {
            shardNames = try Self.shardNames(indexJSON: indexData, path: (dir as NSString).appendingPathComponent("model.safetensors.index.json"))
        } else {
            let all = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
            shardNames = all.filter { $0.hasSuffix(".safetensors") }.sorted()
        }
        guard !shardNames.isEmpty else {
            throw ModelError.unsupportedFormat(path: path, reason: "no .safetensors files found")
        }

        let shards = try shardNames.map { try SafetensorsFile(path: (dir as NSString).appendingPathComponent($0)) }
        try self.init(directory: dir, shards: shards, configJSON: FileCheck.contentsIfPresent(configPath, "model config"), configPath: configPath)
    }

    /// A checkpoint from opened shards and the contents of its `config.json` (nil when there is none).
    public init(directory: String, shards: [SafetensorsFile], configJSON: Data?, configPath: String) throws {
        self.directory = directory
        var files: [SafetensorsFile] = []
        var index: [String: (Int, SafetensorsFile.Entry)] = [:]
        for f in shards {
            for (hfName, e) in f.entries {
                let canonical = Self.canonicalName(hfName) ?? hfName
                // Biases other than Q/K/V's (o_proj, the MLP) would be ignored, silently changing the model.
                if canonical.hasSuffix(".bias"), !LlamaHyperParameters.isQKVBias(canonical) {
                    throw ModelError.unsupportedFormat(path: f.path, reason: "tensor '\(hfName)': only Q/K/V biases are supported")
                }
                guard index[canonical] == nil else {
                    throw ModelError.unsupportedFormat(path: f.path, reason: "tensor '\(hfName)' appears in more than one shard")
                }
                index[canonical] = (files.count, e)
            }
            files.append(f)
        }
        self.files = files
        self.index = index
        tensorNames = index.keys.sorted()
        guard let configJSON else {
            throw ModelError.unsupportedFormat(path: configPath, reason: "config.json not found")
        }
        hyper = try Self.hyperParameters(configJSON: configJSON, path: configPath, hasLMHead: index[LlamaTensorName.output] != nil,
                                         hasQKVBias: index.keys.contains(where: LlamaHyperParameters.isQKVBias))
    }

    /// The shard file names listed by `model.safetensors.index.json`, each inside the directory.
    public static func shardNames(indexJSON: Data, path indexPath: String) throws -> [String] {
        guard let obj = try? JSONSerialization.jsonObject(with: indexJSON) as? [String: Any],
              let map = obj["weight_map"] as? [String: Any] else {
            throw ModelError.invalidConfig(path: indexPath, key: "weight_map", reason: "is missing or not an object")
        }
        let shardNames = Array(Set(map.values.compactMap { $0 as? String })).sorted()
        for s in shardNames where s.contains("/") || s == ".." {
            throw ModelError.invalidConfig(path: indexPath, key: "weight_map", reason: "names a file outside the directory: \(s)")
        }
        return shardNames
    }

    public var layerCountKey: String { "num_hidden_layers in \((directory as NSString).appendingPathComponent("config.json"))" }

    public func weight(_ name: String) throws -> WeightTensor {
        guard let (fi, e) = index[name] else { throw ModelError.missingTensor(name) }
        let f = files[fi]
        return WeightTensor(name: name, type: e.type, shape: e.shape.reversed(), data: f.bytes(of: e), owner: f)
    }

    /// Maps a Hugging Face Llama tensor name to its GGUF name; nil for names with no mapping.
    public static func canonicalName(_ hf: String) -> String? {
        switch hf {
        case "model.embed_tokens.weight": return LlamaTensorName.tokenEmbedding
        case "model.norm.weight": return LlamaTensorName.outputNorm
        case "lm_head.weight": return LlamaTensorName.output
        default: break
        }
        let prefix = "model.layers."
        guard hf.hasPrefix(prefix) else { return nil }
        let rest = hf.dropFirst(prefix.count)
        guard let dot = rest.firstIndex(of: "."), let layer = Int(rest[..<dot]), layer >= 0 else { return nil }
        let suffixes: [String: String] = [
            "self_attn.q_proj.weight": "attn_q.weight",
            "self_attn.k_proj.weight": "attn_k.weight",
            "self_attn.v_proj.weight": "attn_v.weight",
            "self_attn.q_proj.bias": "attn_q.bias",
            "self_attn.k_proj.bias": "attn_k.bias",
            "self_attn.v_proj.bias": "attn_v.bias",
            "self_attn.o_proj.weight": "attn_output.weight",
            "mlp.gate_proj.weight": "ffn_gate.weight",
            "mlp.up_proj.weight": "ffn_up.weight",
            "mlp.down_proj.weight": "ffn_down.weight",
            "input_layernorm.weight": "attn_norm.weight",
            "post_attention_layernorm.weight": "ffn_norm.weight",
        ]
        guard let s = suffixes[String(rest[rest.index(after: dot)...])] else { return nil }
        return "blk.\(layer).\(s)"
    }

    /// The hyper-parameters a `config.json` describes (`path` names it in errors).
    public static func hyperParameters(configJSON data: Data, path: String, hasLMHead: Bool,
                                       hasQKVBias: Bool = false) throws -> LlamaHyperParameters {
        guard let c = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ModelError.invalidConfig(path: path, key: "(root)", reason: "is not a JSON object")
        }
        func int(_ k: String) throws -> Int {
            guard let v = c[k] else { throw ModelError.invalidConfig(path: path, key: k, reason: "is missing") }
            guard let i = JSON.int(v) else { throw ModelError.invalidConfig(path: path, key: k, reason: "is not an integer") }
            return i
        }
        func optInt(_ k: String) throws -> Int? { (c[k] == nil || c[k] is NSNull) ? nil : try int(k) }
        func float(_ k: String, default d: Double? = nil) throws -> Float {
            guard let v = c[k], !(v is NSNull) else {
                if let d { return Float(d) }
                throw ModelError.invalidConfig(path: path, key: k, reason: "is missing")
            }
            guard let f = JSON.double(v) else { throw ModelError.invalidConfig(path: path, key: k, reason: "is not a number") }
            return Float(f)
        }
        let modelType = c["model_type"] as? String ?? "llama"
        guard ["llama", "qwen2"].contains(modelType) else { throw ModelError.unsupportedArchitecture(modelType) }
        // Qwen2's sliding window is off in its released configs; on, it would change attention.
        if modelType == "qwen2", c["use_sliding_window"] as? Bool == true {
            throw ModelError.invalidConfig(path: path, key: "use_sliding_window", reason: "is true; Qwen2's sliding window is not supported")
        }
        let hidden = try int("hidden_size")
        let heads = try int("num_attention_heads")
        guard heads > 0 else { throw ModelError.invalidConfig(path: path, key: "num_attention_heads", reason: "must be positive") }
        let headDim = try optInt("head_dim") ?? hidden / heads
        let theta = try float("rope_theta", default: 10000)
        let tie = (c["tie_word_embeddings"] as? Bool) ?? false
        let h = LlamaHyperParameters(
            architecture: modelType,
            layers: try int("num_hidden_layers"),
            hiddenSize: hidden,
            ffnSize: try int("intermediate_size"),
            heads: heads,
            kvHeads: try optInt("num_key_value_heads") ?? heads,
            headDim: headDim,
            vocabSize: try int("vocab_size"),
            rmsEps: try float("rms_norm_eps"),
            ropeTheta: theta,
            contextLength: try int("max_position_embeddings"),
            // A tied model that still ships lm_head is used as untied: the data is the same.
            tiedEmbeddings: tie && !hasLMHead,
            ropeLayout: .halfRotation,
            options: ArchitectureOptions(qkvBias: hasQKVBias),
            ropeScaling: try RopeScaling(huggingFace: c["rope_scaling"], theta: theta, headDim: headDim, path: path))
        try h.validate()
        return h
    }
}

/// Opens a model by path: a `.gguf` file, a Hugging Face directory, or a `.safetensors` file
/// inside one. Files are recognised by their magic bytes, not only their extension.
public func openModel(path: String) throws -> WeightSource {
    guard FileManager.default.fileExists(atPath: path) else {
        throw ModelError.unsupportedFormat(path: path, reason: "no such file or directory")
    }
    // Before any open: a FIFO would block the magic-byte read below.
    let kind = try FileCheck.require(path, "model", allowed: [.regular, .directory])
    if kind == .directory || path.hasSuffix(".safetensors") { return try SafetensorsModel(path: path) }
    let magic = FileHandle(forReadingAtPath: path).map { h -> Data in
        defer { try? h.close() }
        return (try? h.read(upToCount: 4)) ?? Data()
    } ?? Data()
    if path.hasSuffix(".gguf") || magic == Data("GGUF".utf8) { return try GGUFModel(path: path) }
    throw ModelError.unsupportedFormat(path: path, reason: "neither a .gguf file nor a safetensors checkpoint")
}
