import Foundation
import XCTest
@testable import ModelFormats

/// Writes a safetensors file from (name, dtype, HF shape, values); values are encoded per dtype.
func writeSafetensors(_ url: URL, _ tensors: [(String, String, [Int], [Float])], headerPad: Int = 0,
                      patchHeader: ((inout [String: Any]) -> Void)? = nil) throws {
    var header: [String: Any] = ["__metadata__": ["format": "pt"]]
    var data: [UInt8] = []
    for (name, dtype, shape, values) in tensors {
        let begin = data.count
        for v in values {
            switch dtype {
            case "F32": data.le(v.bitPattern)
            case "F16": data.le(Float16(v).bitPattern)
            case "BF16": data.le(UInt16(v.bitPattern >> 16))
            default: data.le(v.bitPattern)
            }
        }
        header[name] = ["dtype": dtype, "shape": shape, "data_offsets": [begin, data.count]]
    }
    patchHeader?(&header)
    var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
    json.append(contentsOf: [UInt8](repeating: 0x20, count: headerPad))
    var out: [UInt8] = []
    out.le(UInt64(json.count))
    out += json
    out += data
    try Data(out).write(to: url)
}

final class SafetensorsTests: XCTestCase {
    static let config: [String: Any] = [
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "num_hidden_layers": 1, "hidden_size": 4, "intermediate_size": 8, "num_attention_heads": 2,
        "num_key_value_heads": 1, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 64,
        "vocab_size": 6, "tie_word_embeddings": true, "rope_scaling": NSNull(),
    ]

    /// HF-named tensors of a tiny llama (hidden 4, ffn 8, 2 heads of dim 2, 1 KV head, vocab 6).
    static func tinyTensors() -> [(String, String, [Int], [Float])] {
        func vals(_ n: Int, _ k: Float) -> [Float] { (0..<n).map { Float($0) * 0.25 - k } } // exact in F16/BF16
        return [
            ("model.embed_tokens.weight", "F32", [6, 4], vals(24, 1)),
            ("model.layers.0.input_layernorm.weight", "F32", [4], [1, 2, 3, 4]),
            ("model.layers.0.self_attn.q_proj.weight", "F16", [4, 4], vals(16, 2)),
            ("model.layers.0.self_attn.k_proj.weight", "BF16", [2, 4], vals(8, 1)),
            ("model.layers.0.self_attn.v_proj.weight", "F32", [2, 4], vals(8, 0)),
            ("model.layers.0.self_attn.o_proj.weight", "F16", [4, 4], vals(16, 0)),
            ("model.layers.0.post_attention_layernorm.weight", "BF16", [4], [0.5, 1, 1.5, 2]),
            ("model.layers.0.mlp.gate_proj.weight", "F32", [8, 4], vals(32, 3)),
            ("model.layers.0.mlp.up_proj.weight", "F32", [8, 4], vals(32, 4)),
            ("model.layers.0.mlp.down_proj.weight", "BF16", [4, 8], vals(32, 5)),
            ("model.norm.weight", "F32", [4], [1, 1, 1, 1]),
            ("model.layers.0.self_attn.rotary_emb.inv_freq", "F32", [1], [1]),
        ]
    }

    func makeCheckpoint(config: [String: Any] = SafetensorsTests.config) throws -> URL {
        let dir = try makeTempDir(self)
        try JSONSerialization.data(withJSONObject: config).write(to: dir.appendingPathComponent("config.json"))
        try writeSafetensors(dir.appendingPathComponent("model.safetensors"), Self.tinyTensors(), headerPad: 3)
        return dir
    }

    func testLoadsTinyCheckpoint() throws {
        let dir = try makeCheckpoint()
        let model = try SafetensorsModel(path: dir.path)
        let h = model.hyper
        XCTAssertEqual(h, LlamaHyperParameters(architecture: "llama", layers: 1, hiddenSize: 4, ffnSize: 8, heads: 2, kvHeads: 1,
                                               headDim: 2, vocabSize: 6, rmsEps: 1e-5, ropeTheta: 10000, contextLength: 64,
                                               tiedEmbeddings: true, ropeLayout: .halfRotation))
        try model.validateLlamaShapes()
        XCTAssertTrue(model.tensorNames.contains("blk.0.attn_q.weight"))
        XCTAssertTrue(model.tensorNames.contains("model.layers.0.self_attn.rotary_emb.inv_freq")) // unmapped names kept
        XCTAssertFalse(model.tensorNames.contains("model.embed_tokens.weight"))

        let tensors = Dictionary(uniqueKeysWithValues: Self.tinyTensors().map { ($0.0, $0) })
        let mapping = [
            "model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
            "model.layers.0.input_layernorm.weight": "blk.0.attn_norm.weight",
            "model.layers.0.self_attn.q_proj.weight": "blk.0.attn_q.weight",
            "model.layers.0.self_attn.k_proj.weight": "blk.0.attn_k.weight",
            "model.layers.0.self_attn.v_proj.weight": "blk.0.attn_v.weight",
            "model.layers.0.self_attn.o_proj.weight": "blk.0.attn_output.weight",
            "model.layers.0.post_attention_layernorm.weight": "blk.0.ffn_norm.weight",
            "model.layers.0.mlp.gate_proj.weight": "blk.0.ffn_gate.weight",
            "model.layers.0.mlp.up_proj.weight": "blk.0.ffn_up.weight",
            "model.layers.0.mlp.down_proj.weight": "blk.0.ffn_down.weight",
        ]
        for (hf, canonical) in mapping {
            XCTAssertEqual(SafetensorsModel.canonicalName(hf), canonical)
            let (_, dtype, shape, values) = tensors[hf]!
            let w = try model.weight(canonical)
            XCTAssertEqual(w.name, canonical)
            XCTAssertEqual(w.shape, Array(shape.reversed()), canonical)
            XCTAssertEqual(w.type.description, dtype)
            XCTAssertEqual(w.toFloat(), values, canonical) // HF row-major [out, in] == GGUF rows of `in`
        }
        let k = try model.weight("blk.0.attn_k.weight")
        XCTAssertEqual(k.rows, 2)
        XCTAssertEqual(k.cols, 4)
        XCTAssertEqual(k.row(1), [1, 1.25, 1.5, 1.75].map { $0 - 1 })
        assertThrows(try model.weight("output.weight"), contains: ["output.weight"])

        // openModel accepts the directory and a shard path.
        XCTAssertTrue(try openModel(path: dir.path) is SafetensorsModel)
        XCTAssertEqual(try openModel(path: dir.appendingPathComponent("model.safetensors").path).hyper.layers, 1)
    }

    func testShardedCheckpointWithIndex() throws {
        let dir = try makeTempDir(self)
        var cfg = Self.config
        cfg["tie_word_embeddings"] = false
        cfg["head_dim"] = 2
        try JSONSerialization.data(withJSONObject: cfg).write(to: dir.appendingPathComponent("config.json"))
        var all = Self.tinyTensors()
        all.append(("lm_head.weight", "F16", [6, 4], (0..<24).map { Float($0) }))
        let first = Array(all.prefix(6)), second = Array(all.dropFirst(6))
        try writeSafetensors(dir.appendingPathComponent("model-00001-of-00002.safetensors"), first)
        try writeSafetensors(dir.appendingPathComponent("model-00002-of-00002.safetensors"), second, headerPad: 5)
        var map: [String: String] = [:]
        for t in first { map[t.0] = "model-00001-of-00002.safetensors" }
        for t in second { map[t.0] = "model-00002-of-00002.safetensors" }
        try JSONSerialization.data(withJSONObject: ["metadata": [:], "weight_map": map])
            .write(to: dir.appendingPathComponent("model.safetensors.index.json"))
        let model = try SafetensorsModel(path: dir.path)
        XCTAssertEqual(model.files.count, 2)
        XCTAssertFalse(model.hyper.tiedEmbeddings)
        try model.validateLlamaShapes()
        XCTAssertEqual(try model.weight("output.weight").shape, [4, 6])
        XCTAssertEqual(try model.weight("output.weight").row(5), [20, 21, 22, 23])
    }

    func testMalformedFiles() throws {
        let dir = try makeCheckpoint()
        let file = dir.appendingPathComponent("model.safetensors")
        let good = try Data(contentsOf: file)

        // Header length beyond the file.
        var bad = good
        bad.replaceSubrange(0..<8, with: withUnsafeBytes(of: UInt64(good.count).littleEndian, Array.init))
        try bad.write(to: file)
        assertThrows(try SafetensorsModel(path: dir.path), contains: ["header length \(good.count)", "model.safetensors"])
        bad.replaceSubrange(0..<8, with: withUnsafeBytes(of: UInt64.max.littleEndian, Array.init))
        try bad.write(to: file)
        assertThrows(try SafetensorsModel(path: dir.path), contains: ["header length"])
        try Data([1, 2, 3]).write(to: file)
        assertThrows(try SafetensorsModel(path: dir.path), contains: ["too small"])

        // Offsets beyond the data section.
        try writeSafetensors(file, Self.tinyTensors()) { h in
            var e = h["model.norm.weight"] as! [String: Any]
            e["data_offsets"] = [1000, 1016]
            h["model.norm.weight"] = e
        }
        assertThrows(try SafetensorsModel(path: dir.path), contains: ["model.norm.weight", "1000", "1016"])
        // Offsets not matching the shape.
        try writeSafetensors(file, Self.tinyTensors()) { h in
            var e = h["model.norm.weight"] as! [String: Any]
            e["shape"] = [5]
            h["model.norm.weight"] = e
        }
        assertThrows(try SafetensorsModel(path: dir.path), contains: ["model.norm.weight", "[5]"])
        // Unknown dtypes.
        for dtype in ["I64", "F64", "F8_E4M3"] {
            try writeSafetensors(file, Self.tinyTensors()) { h in
                var e = h["model.layers.0.mlp.up_proj.weight"] as! [String: Any]
                e["dtype"] = dtype
                h["model.layers.0.mlp.up_proj.weight"] = e
            }
            assertThrows(try SafetensorsModel(path: dir.path), contains: ["model.layers.0.mlp.up_proj.weight", dtype])
        }
        // Header that is not JSON.
        var junk: [UInt8] = []
        junk.le(UInt64(4))
        junk += Array("{{{{".utf8)
        try Data(junk).write(to: file)
        assertThrows(try SafetensorsModel(path: dir.path), contains: ["invalid safetensors header"])
        // Shape mismatch against the config.
        try writeSafetensors(file, Self.tinyTensors().map { t in
            t.0 == "model.layers.0.mlp.gate_proj.weight" ? (t.0, t.1, [4, 8], t.3) : t
        })
        let model = try SafetensorsModel(path: dir.path)
        assertThrows(try model.validateLlamaShapes(), contains: ["blk.0.ffn_gate.weight", "[8, 4]", "[4, 8]"])
    }

    func testBadConfig() throws {
        var cfg = Self.config
        cfg.removeValue(forKey: "hidden_size")
        assertThrows(try SafetensorsModel(path: try makeCheckpoint(config: cfg).path), contains: ["hidden_size", "missing"])
        cfg = Self.config
        cfg["num_key_value_heads"] = 3
        assertThrows(try SafetensorsModel(path: try makeCheckpoint(config: cfg).path), contains: ["kvHeads", "divisible"])
        cfg = Self.config
        cfg["num_hidden_layers"] = "one"
        assertThrows(try SafetensorsModel(path: try makeCheckpoint(config: cfg).path), contains: ["num_hidden_layers", "integer"])
        cfg = Self.config
        cfg["rope_scaling"] = ["rope_type": "yarn", "factor": 8.0]
        assertThrows(try SafetensorsModel(path: try makeCheckpoint(config: cfg).path), contains: ["rope_scaling", "yarn"])
        cfg["rope_scaling"] = ["rope_type": "llama3", "factor": -1]
        assertThrows(try SafetensorsModel(path: try makeCheckpoint(config: cfg).path), contains: ["rope_scaling.factor", "positive"])
        cfg["rope_scaling"] = ["rope_type": "llama3", "factor": 8.0, "original_max_position_embeddings": 1e30]
        assertThrows(try SafetensorsModel(path: try makeCheckpoint(config: cfg).path), contains: ["original_max_position_embeddings"])
        cfg["rope_scaling"] = ["rope_type": "llama3", "factor": 8.0, "low_freq_factor": 4.0, "high_freq_factor": 1.0]
        assertThrows(try SafetensorsModel(path: try makeCheckpoint(config: cfg).path), contains: ["high_freq_factor"])
        // Llama 3.1's rope_scaling becomes per-pair factors, linear a single one.
        cfg["rope_scaling"] = ["rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                               "original_max_position_embeddings": 2]
        let h = try SafetensorsModel(path: try makeCheckpoint(config: cfg).path).hyper
        XCTAssertEqual(h.ropeScaling.frequencyFactors,
                       RopeScaling.llama3Factors(headDim: h.headDim, theta: h.ropeTheta, factor: 8, lowFreqFactor: 1, highFreqFactor: 4,
                                                 originalContext: 2))
        cfg["rope_scaling"] = ["type": "linear", "factor": 2.0]
        XCTAssertEqual(try SafetensorsModel(path: try makeCheckpoint(config: cfg).path).hyper.ropeScaling, RopeScaling(linearFactor: 2))
        let empty = try makeTempDir(self)
        assertThrows(try openModel(path: empty.path), contains: ["no .safetensors files"])
        assertThrows(try openModel(path: empty.appendingPathComponent("x.bin").path), contains: ["x.bin"])
    }
}

/// Limits checked when a checkpoint is opened: layers past `num_hidden_layers` and non-finite weights.
final class CheckpointLimitsTests: XCTestCase {
    func testLayersPastNumHiddenLayersAreRejected() throws {
        let dir = try makeTempDir(self)
        try JSONSerialization.data(withJSONObject: SafetensorsTests.config).write(to: dir.appendingPathComponent("config.json"))
        let second = SafetensorsTests.tinyTensors().filter { $0.0.hasPrefix("model.layers.0.") }
            .map { ($0.0.replacingOccurrences(of: "layers.0.", with: "layers.1."), $0.1, $0.2, $0.3) }
        try writeSafetensors(dir.appendingPathComponent("model.safetensors"), SafetensorsTests.tinyTensors() + second)
        assertThrows(try openModel(path: dir.path).validateLlamaShapes(),
                     contains: ["tensors for layer 1 (blk.1.*) but num_hidden_layers in", "config.json says 1 layers"])
    }

    func testNumHiddenLayersPastTheTensorsIsNamed() throws {
        var config = SafetensorsTests.config
        config["num_hidden_layers"] = 3
        let dir = try makeTempDir(self)
        try JSONSerialization.data(withJSONObject: config).write(to: dir.appendingPathComponent("config.json"))
        try writeSafetensors(dir.appendingPathComponent("model.safetensors"), SafetensorsTests.tinyTensors())
        assertThrows(try openModel(path: dir.path).validateLlamaShapes(),
                     contains: ["config.json says 3 layers but the file has tensors only for layers 0..<1"])
    }

    func testNonFiniteWeightsAreFoundInEveryType() throws {
        let dir = try makeTempDir(self)
        try JSONSerialization.data(withJSONObject: SafetensorsTests.config).write(to: dir.appendingPathComponent("config.json"))
        for (name, value) in [("model.norm.weight", Float.nan), ("model.layers.0.self_attn.q_proj.weight", .infinity),
                              ("model.layers.0.mlp.down_proj.weight", -.infinity)] {
            let tensors = SafetensorsTests.tinyTensors().map { t in t.0 == name ? (t.0, t.1, t.2, t.3.enumerated().map { $0 == 3 ? value : $1 }) : t }
            try writeSafetensors(dir.appendingPathComponent("model.safetensors"), tensors)
            let canonical = SafetensorsModel.canonicalName(name)!
            let cols = tensors.first { $0.0 == name }!.2.last!
            assertThrows(try openModel(path: dir.path).validateFiniteWeights(),
                         contains: ["tensor '\(canonical)' holds a non-finite value (\(value))", "row \(3 / cols), column \(3 % cols)"])
        }
        // Quantized blocks: a non-finite f16 scale (d, or Q4_1's m) makes the block non-finite.
        let inf16: [UInt8] = [0x00, 0x7C], one16: [UInt8] = [0x00, 0x3C]
        for (type, block) in [(GGMLType.q8_0, inf16 + [UInt8](repeating: 1, count: 32)),
                              (.q4_1, one16 + inf16 + [UInt8](repeating: 1, count: 16)),
                              (.q4_0, inf16 + [UInt8](repeating: 1, count: 16))] {
            let good = Self.block(type, finite: true), bytes = good + block
            let bad = bytes.withUnsafeBytes { WeightTensor(name: "t", type: type, shape: [64], data: $0, owner: self as AnyObject).firstNonFinite() }
            XCTAssertEqual(bad?.element, 32, "\(type)")
            let fine = good.withUnsafeBytes { WeightTensor(name: "t", type: type, shape: [32], data: $0, owner: self as AnyObject).firstNonFinite() }
            XCTAssertNil(fine, "\(type)")
        }
    }

    private static func block(_ type: GGMLType, finite: Bool) -> [UInt8] {
        let one16: [UInt8] = [0x00, 0x3C]
        return type == .q4_1 ? one16 + one16 + [UInt8](repeating: 7, count: 16) : one16 + [UInt8](repeating: 7, count: type.bytesPerBlock - 2)
    }

    /// Every tensor of the real model is checked at load; this is what it costs.
    func testTheRealModelIsFiniteAndCheapToCheck() throws {
        let (file, _) = try RealModel.load()
        let model = try GGUFModel(file: file)
        let start = Date()
        try model.validateFiniteWeights()
        let seconds = Date().timeIntervalSince(start)
        print(String(format: "finite check of every tensor of %@: %.1f ms", (file.path as NSString).lastPathComponent, seconds * 1000))
        XCTAssertLessThan(seconds, 5)
    }
}
