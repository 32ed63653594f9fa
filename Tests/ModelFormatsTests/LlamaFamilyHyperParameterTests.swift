import Foundation
@testable import ModelFormats
import XCTest

/// rope_freqs, rope.scaling.*, qwen2 keys and Q/K/V biases read from a tiny GGUF, and what is refused.
final class LlamaFamilyHyperParameterTests: XCTestCase {
    private func file(_ change: (inout GGUFBuilder) -> Void) throws -> GGUFFile {
        var g = GGUFBuilder.tinyLlama(layers: 2)
        change(&g)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("family-\(UUID().uuidString).gguf")
        try g.write(to: url)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return try GGUFFile(path: url.path)
    }

    private static func floats(_ name: String, _ values: [Float]) -> GGUFBuilder.Tensor {
        var data: [UInt8] = []
        for v in values { data.le(v.bitPattern) }
        return GGUFBuilder.Tensor(name: name, dims: [UInt64(values.count)], type: 0, data: data)
    }

    func testRopeFreqsAndLinearFactorBecomeDivisors() throws {
        let factors: [Float] = [1, 1, 2, 3.5, 8, 8, 8, 8]  // head dim 16: 8 pairs
        let h = try LlamaHyperParameters(gguf: file {
            $0.tensors.append(Self.floats("rope_freqs.weight", factors))
            $0.set("llama.rope.scaling.factor", .f32(2))  // type absent: linear, as llama.cpp reads it
        })
        XCTAssertEqual(h.ropeScaling, RopeScaling(linearFactor: 2, frequencyFactors: factors))
        XCTAssertEqual(h.ropeDivisors(layer: 1), factors.map { $0 * 2 })
        let none = try LlamaHyperParameters(gguf: file {
            $0.set("llama.rope.scaling.type", .string("none"))
            $0.set("llama.rope.scaling.factor", .f32(4))
        })
        XCTAssertNil(none.ropeDivisors(layer: 0))
        let old = try LlamaHyperParameters(gguf: file { $0.set("llama.rope.scale_linear", .f32(3)) })
        XCTAssertEqual(old.ropeScaling.linearFactor, 3)
    }

    func testBadRopeFactorsAreRefusedByName() throws {
        assertThrows(try LlamaHyperParameters(gguf: file { $0.tensors.append(Self.floats("rope_freqs.weight", [1, 2, 3])) }),
                     contains: ["rope_freqs.weight", "[3]", "8 float factors"])
        assertThrows(try LlamaHyperParameters(gguf: file { $0.tensors.append(Self.floats("rope_freqs.weight", [1, 1, 1, 0, 1, 1, 1, 1])) }),
                     contains: ["rope_freqs.weight", "pair 3", "finite and positive"])
        assertThrows(try LlamaHyperParameters(gguf: file { $0.set("llama.rope.scaling.factor", .f32(-2)) }),
                     contains: ["llama.rope.scaling.factor", "-2"])
        assertThrows(try LlamaHyperParameters(gguf: file { $0.set("llama.rope.scaling.type", .string("longrope")) }),
                     contains: ["llama.rope.scaling.type", "longrope", "not supported"])
    }

    func testQwen2KeysAndBiases() throws {
        let qwen = try file { g in
            g.metadata = g.metadata.map { key, value in (key.hasPrefix("llama.") ? "qwen2." + key.dropFirst(6) : key, value) }
            g.set("general.architecture", .string("qwen2"))
            for l in 0..<2 {
                g.tensors += [Self.floats("blk.\(l).attn_q.bias", .init(repeating: 0.5, count: 32)),
                              Self.floats("blk.\(l).attn_k.bias", .init(repeating: 0.25, count: 16)),
                              Self.floats("blk.\(l).attn_v.bias", .init(repeating: -1, count: 16))]
            }
        }
        let model = try GGUFModel(file: qwen)
        XCTAssertEqual(model.hyper.architecture, "qwen2")
        XCTAssertEqual(model.hyper.ropeLayout, .halfRotation)
        XCTAssertTrue(model.hyper.options.qkvBias)
        XCTAssertNoThrow(try model.validateLlamaShapes())
        // A layer without its biases is named; a bias the forward would ignore is refused at open.
        let partial = try GGUFModel(file: try file { g in
            g.tensors += [Self.floats("blk.0.attn_q.bias", .init(repeating: 0, count: 32)), Self.floats("blk.0.attn_k.bias", .init(repeating: 0, count: 16)),
                          Self.floats("blk.0.attn_v.bias", .init(repeating: 0, count: 16))]
        })
        assertThrows(try partial.validateLlamaShapes(), contains: ["blk.1.attn_q.bias"])
        assertThrows(try GGUFModel(file: try file { $0.tensors.append(Self.floats("blk.0.attn_output.bias", .init(repeating: 0, count: 32))) }),
                     contains: ["blk.0.attn_output.bias", "only Q/K/V biases"])
    }

    /// tokenizer_config.json's chat_template (a string or a named list) or chat_template.jinja, recognised like a GGUF's.
    func testHuggingFaceChatTemplates() throws {
        func family(config: Any?, jinja: String? = nil) throws -> ChatTemplate {
            let dir = try makeTempDir(self)
            if let config {
                try JSONSerialization.data(withJSONObject: config).write(to: dir.appendingPathComponent("tokenizer_config.json"))
            }
            if let jinja { try Data(jinja.utf8).write(to: dir.appendingPathComponent("chat_template.jinja")) }
            return try ChatTemplate(huggingFaceDirectory: dir)
        }
        let llama3 = "{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>{% endfor %}"
        XCTAssertEqual(try family(config: ["chat_template": llama3]).family, .llama3)
        XCTAssertEqual(try family(config: ["chat_template": [["name": "tool_use", "template": llama3],
                                                              ["name": "default", "template": "<start_of_turn>user"]]]).family, .gemma)
        let smol = try family(config: ["chat_template": "<|im_start|>system\nYou are terse.<|im_end|>\n{% for m in messages %}<|im_start|>{% endfor %}"])
        XCTAssertEqual(smol, ChatTemplate(family: .chatML, defaultSystemPrompt: "You are terse."))
        XCTAssertEqual(try family(config: ["bos_token": "<s>"], jinja: llama3).family, .llama3)
        let none = try family(config: nil)
        XCTAssertEqual(none.family, .chatML)
        XCTAssertNotNil(none.notice)
        assertThrows(try family(config: ["not", "an", "object"]), contains: ["tokenizer_config.json", "JSON object"])
    }

    /// A Hugging Face Qwen2 directory: model_type qwen2, q/k/v_proj biases under their GGUF names.
    func testHuggingFaceQwen2Directory() throws {
        func checkpoint(_ extra: [(String, String, [Int], [Float])], sliding: Bool = false) throws -> String {
            let dir = try makeTempDir(self)
            var config = SafetensorsTests.config
            config["model_type"] = "qwen2"
            config["use_sliding_window"] = sliding
            try JSONSerialization.data(withJSONObject: config).write(to: dir.appendingPathComponent("config.json"))
            try writeSafetensors(dir.appendingPathComponent("model.safetensors"), SafetensorsTests.tinyTensors() + extra)
            return dir.path
        }
        let biases = [("model.layers.0.self_attn.q_proj.bias", "F32", [4], [Float](repeating: 0.5, count: 4)),
                      ("model.layers.0.self_attn.k_proj.bias", "F32", [2], [1, 2]),
                      ("model.layers.0.self_attn.v_proj.bias", "F32", [2], [3, 4])]
        let model = try SafetensorsModel(path: try checkpoint(biases))
        XCTAssertEqual(model.hyper.architecture, "qwen2")
        XCTAssertTrue(model.hyper.options.qkvBias)
        XCTAssertNoThrow(try model.validateLlamaShapes())
        XCTAssertEqual(try model.weight(LlamaTensorName.attnVBias(0)).toFloat(), [3, 4])
        assertThrows(try SafetensorsModel(path: try checkpoint(biases, sliding: true)), contains: ["use_sliding_window"])
        assertThrows(try SafetensorsModel(path: try checkpoint(biases + [("model.layers.0.self_attn.o_proj.bias", "F32", [4], [0, 0, 0, 0])])),
                     contains: ["o_proj.bias", "only Q/K/V biases"])
    }
}
