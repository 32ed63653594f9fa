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
}
