import Foundation
@testable import LayerShare
import XCTest

/// Limits checked at load and before allocating, on small synthetic inputs.
final class LimitsModelTests: XCTestCase {
    /// SmolLM2-135M's shape; the plan's arithmetic needs no weights.
    private let hyper = LlamaHyperParameters(layers: 30, hiddenSize: 576, ffnSize: 1536, heads: 9, kvHeads: 3, headDim: 64,
                                             vocabSize: 49152, rmsEps: 1e-5, ropeTheta: 10000, contextLength: 8192,
                                             tiedEmbeddings: true, ropeLayout: .adjacentPairs)

    private func plan(available: Int) -> MemoryPlan {
        MemoryPlan(model: hyper, specs: LayerSpec.standard(layers: 30, kvHeads: 3), weights: 100 << 20, available: available, place: "the test")
    }

    func testMemoryPlanNamesTheLargestContextAndChunkThatFit() throws {
        let p = plan(available: 1 << 30)
        XCTAssertEqual(p.perPosition, 30 * 2 * 192 * 4)
        let fits = (p.available - p.weights - p.margin - 128 * p.perChunkRow) / p.perPosition
        XCTAssertEqual(try p.resolve(context: fits, chunk: 128, modelContext: 8192, log: { _ in }).context, fits)
        assertThrows(try p.resolve(context: fits + 1, chunk: 128, modelContext: 8192, log: { _ in }), contains: ["--ctx \(fits + 1) needs", "the largest --ctx that fits is \(fits)"])
        assertThrows(try p.resolve(context: .max, chunk: 128, modelContext: 8192, log: { _ in }), contains: ["needs more than 8 EiB of KV cache"])
        assertThrows(try p.resolve(context: nil, chunk: .max, modelContext: .max, log: { _ in }), contains: ["--chunk \(Int.max) needs more than 8 EiB of activations", "the largest --chunk that fits is"])
        assertThrows(try p.resolve(context: 64, chunk: 0, modelContext: 8192, log: { _ in }), contains: ["--chunk must be positive, got 0"])
        assertThrows(try p.resolve(context: 0, chunk: 1, modelContext: 8192, log: { _ in }), contains: ["--ctx must be positive, got 0"])
        // Without --ctx the model's context is capped to what fits, with a note.
        var notes: [String] = []
        let capped = try plan(available: 512 << 20).resolve(context: nil, chunk: 128, modelContext: 8192) { notes.append($0) }
        XCTAssertLessThan(capped.context, 8192)
        XCTAssertTrue(notes.contains { $0.contains("context capped at \(capped.context)") }, "\(notes)")
        assertThrows(try plan(available: 64 << 20).resolve(context: nil, chunk: 128, modelContext: 8192, log: { _ in }), contains: ["the weights need 100.0 MiB but the test has 64.0 MiB"])
    }

    func testAttentionMapsNameTheLargestSequenceThatFits() throws {
        // 30 layers × 9 heads × 4 bytes = 1080 bytes per token²: 997² × 1080 ≤ 1 GiB < 998² × 1080.
        assertThrows(try AttentionRecorder.checkMemory(hyper, tokens: 998, available: 1 << 30), contains: ["the largest --tokens that fits is 997"])
        XCTAssertNoThrow(try AttentionRecorder.checkMemory(hyper, tokens: 997, available: 1 << 30))
        assertThrows(try AttentionRecorder.checkMemory(hyper, tokens: .max, available: 1 << 30), contains: ["need more than 8 EiB"])
    }

    func testABlockCountBelowTheLayersInTheFileIsRejected() throws {
        let model = try ModelCopies.withMetadata("llama.block_count", uint32: 29, test: self)
        assertThrows(try LoadedModel(path: model.path), contains: ["the file has tensors for layer 29 (blk.29.*) but llama.block_count says 29 layers"])
    }

    func testATokenizerLargerThanTheVocabularyIsRejectedAndPaddingIsNeverSampled() throws {
        assertThrows(try LoadedModel(path: TinyCheckpoint.write(vocabulary: 6, tokenizerTokens: 8, test: self).path), contains: ["the model's vocabulary has 6 rows but the tokenizer (tokenizer.json) has 8 tokens"])
        let padded = try LoadedModel(path: TinyCheckpoint.write(vocabulary: 6, tokenizerTokens: 4, test: self).path)
        XCTAssertEqual(padded.paddedVocabulary, 2)
        let runner = try Transformer(backend: CPUBackend(), weights: padded.weights, capacity: 64)
        var sampler = try Sampler(temperature: 5, seed: 1)
        let (tokens, _) = try Generator(runner: runner, tokenizer: padded.tokenizer).generate(promptTokens: [0, 1], maxTokens: 60, sampler: &sampler)
        XCTAssertFalse(tokens.isEmpty)
        XCTAssertTrue(tokens.allSatisfy { $0 < 4 }, "sampled a padding row: \(tokens)")
    }

    func testNonFiniteLogitsNameTheirPosition() {
        let rows: [Float] = [0, 1, 2, 3, 4, .infinity]
        assertThrows(try FiniteLogits.check(rows, vocab: 3, firstPosition: 10) { "row \($0)" }, contains: ["non-finite logit (inf) for vocabulary id 2 at context position 11 (row 1)"])
        XCTAssertNoThrow(try FiniteLogits.check([Float](repeating: 3e38, count: 8), vocab: 4, firstPosition: 0) { _ in "" })
    }
}

func assertThrows<T>(_ body: @autoclosure () throws -> T, contains fragments: [String], file: StaticString = #filePath, line: UInt = #line) {
    do {
        _ = try body()
        XCTFail("expected an error mentioning \(fragments)", file: file, line: line)
    } catch {
        for f in fragments { XCTAssertTrue("\(error)".contains(f), "missing \"\(f)\" in: \(error)", file: file, line: line) }
    }
}

/// A one-layer Hugging Face checkpoint (hidden 4, 2 heads of dim 2) with a tokenizer.json of
/// `tokenizerTokens` single-letter tokens.
enum TinyCheckpoint {
    static func write(vocabulary: Int, tokenizerTokens: Int, layers: Int = 1, test: XCTestCase) throws -> URL {
        let dir = try ModelCopies.temporaryDirectory(test)
        let config: [String: Any] = [
            "model_type": "llama", "num_hidden_layers": layers, "hidden_size": 4, "intermediate_size": 8,
            "num_attention_heads": 2, "num_key_value_heads": 1, "rms_norm_eps": 1e-5, "max_position_embeddings": 64,
            "vocab_size": vocabulary, "tie_word_embeddings": true,
        ]
        try JSONSerialization.data(withJSONObject: config).write(to: dir.appendingPathComponent("config.json"))
        var tensors: [(String, [Int])] = [("model.embed_tokens.weight", [vocabulary, 4]), ("model.norm.weight", [4])]
        for l in 0..<layers {
            let p = "model.layers.\(l)."
            tensors += [(p + "input_layernorm.weight", [4]), (p + "post_attention_layernorm.weight", [4]),
                        (p + "self_attn.q_proj.weight", [4, 4]), (p + "self_attn.k_proj.weight", [2, 4]),
                        (p + "self_attn.v_proj.weight", [2, 4]), (p + "self_attn.o_proj.weight", [4, 4]),
                        (p + "mlp.gate_proj.weight", [8, 4]), (p + "mlp.up_proj.weight", [8, 4]), (p + "mlp.down_proj.weight", [4, 8])]
        }
        try safetensors(tensors).write(to: dir.appendingPathComponent("model.safetensors"))
        let letters = (0..<tokenizerTokens).map { String(UnicodeScalar(UInt8(97 + $0))) }
        let tokenizer: [String: Any] = [
            "model": ["type": "BPE", "vocab": Dictionary(uniqueKeysWithValues: letters.enumerated().map { ($1, $0) }), "merges": [String]()],
            "pre_tokenizer": ["type": "ByteLevel", "add_prefix_space": false, "use_regex": true],
        ]
        try JSONSerialization.data(withJSONObject: tokenizer).write(to: dir.appendingPathComponent("tokenizer.json"))
        return dir
    }

    /// F32 tensors with small varied values.
    private static func safetensors(_ tensors: [(String, [Int])]) throws -> Data {
        var header: [String: Any] = [:]
        var data = Data()
        for (i, (name, shape)) in tensors.enumerated() {
            let begin = data.count
            for j in 0..<shape.reduce(1, *) {
                let v = Float((i * 7 + j * 3) % 11) / 11 - 0.4
                withUnsafeBytes(of: v.bitPattern.littleEndian) { data.append(contentsOf: $0) }
            }
            header[name] = ["dtype": "F32", "shape": shape, "data_offsets": [begin, data.count]]
        }
        let json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        var out = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        return out + json + data
    }
}
