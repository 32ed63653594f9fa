import Foundation
import LayerShare
import ModelFormats
import XCTest

/// Llama-3- and Qwen2-style random GGUFs (RandomGGUF) on the CPU path against tools/reference_forward.py.
///
/// Tolerance: max |Δ| / max |ref| ≤ 1e-4. Both sides read the same stored weights (the reference
/// dequantizes with gguf.quants), so what differs is float32 activations against float64 through two
/// layers: ~1e-6 here. A wrong op (a missing bias, unscaled RoPE, the wrong pair layout) moves the
/// logits by 1e-2 or more, which each test also shows by switching the feature off.
final class LlamaFamilyReferenceTests: XCTestCase {
    func testLlama3StyleHyperParametersAndFactors() throws {
        let model = try RandomGGUF.model("llama3")
        let h = model.hyper
        XCTAssertEqual(h.architecture, "llama")
        XCTAssertEqual([h.heads, h.kvHeads, h.headDim, h.groupSize], [8, 2, 16, 4])
        XCTAssertFalse(h.tiedEmbeddings)
        XCTAssertEqual(h.ropeLayout, .adjacentPairs)
        XCTAssertFalse(h.options.qkvBias)
        // The file's factors (written by Python from Llama 3.1's rule) are the ones our own rule computes.
        let factors = try XCTUnwrap(h.ropeScaling.frequencyFactors)
        let ours = RopeScaling.llama3Factors(headDim: 16, theta: 500_000, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 16)
        XCTAssertEqual(factors.count, 8)
        for (a, b) in zip(factors, ours) { XCTAssertEqual(a, b, accuracy: 1e-6 * b) }
        XCTAssertTrue(factors.contains { $0 != 1 && $0 != 8 }, "the blend band is empty: \(factors)")
        XCTAssertEqual(h.ropeDivisors(layer: 1), factors)
        XCTAssertEqual(model.chatTemplate.family, .llama3)
        XCTAssertEqual(model.promptTokens("the").first, model.tokenizer.bosId, "llama-bpe adds BOS")
    }

    func testLlama3StyleLogitsMatchReference() throws {
        let model = try RandomGGUF.model("llama3")
        let diff = try check(model, path: RandomGGUF.path("llama3"))
        // Without the factors the same weights give other logits: the test sees rope_freqs.
        let plain = OverriddenHyper(model.weights) { $0.ropeScaling = .none }
        let unscaled = try check(model, path: RandomGGUF.path("llama3"), source: plain, expectMatch: false)
        print("llama3-style CPU vs reference: rel \(diff.maxRelative); without rope_freqs rel \(unscaled.maxRelative)")
    }

    func testQwen2StyleLogitsMatchReference() throws {
        let model = try RandomGGUF.model("qwen2")
        let h = model.hyper
        XCTAssertEqual(h.architecture, "qwen2")
        XCTAssertEqual([h.hiddenSize, h.heads, h.kvHeads, h.headDim, h.ffnSize], [72, 6, 2, 16, 101])
        XCTAssertTrue(h.tiedEmbeddings)
        XCTAssertTrue(h.options.qkvBias)
        XCTAssertEqual(h.ropeLayout, .halfRotation)
        XCTAssertTrue(h.ropeScaling.isNone)
        XCTAssertEqual(model.chatTemplate.family, .chatML)
        let diff = try check(model, path: RandomGGUF.path("qwen2"))
        let unbiased = try check(model, path: RandomGGUF.path("qwen2"), source: OverriddenHyper(model.weights) { $0.options.qkvBias = false },
                                 expectMatch: false)
        let adjacent = try check(model, path: RandomGGUF.path("qwen2"), source: OverriddenHyper(model.weights) { $0.ropeLayout = .adjacentPairs },
                                 expectMatch: false)
        print("qwen2-style CPU vs reference: rel \(diff.maxRelative); without biases \(unbiased.maxRelative), adjacent pairs \(adjacent.maxRelative)")
    }

    /// `rope.scaling.type linear` with a factor of 4 divides every frequency (both sides), on top of rope_freqs.
    func testLinearScalingMatchesReference() throws {
        for style in ["qwen2", "llama3"] {
            let options = ["--linear-scaling", "4"]
            let model = try RandomGGUF.model(style, options)
            XCTAssertEqual(model.hyper.ropeScaling.linearFactor, 4)
            XCTAssertEqual(model.hyper.ropeScaling.frequencyFactors != nil, style == "llama3")
            _ = try check(model, path: RandomGGUF.path(style, options))
            _ = try check(model, path: RandomGGUF.path(style, options),
                          source: OverriddenHyper(model.weights) { $0.ropeScaling.linearFactor = 1 }, expectMatch: false)
        }
    }

    /// An untied output.weight equal to the embedding gives exactly the tied model's logits (same
    /// float32 matrix, same product), and a different output.weight does not.
    func testTiedAndUntiedOutputAgree() throws {
        let tied = try RandomGGUF.model("llama3", ["--tied"])
        let copy = try RandomGGUF.model("llama3", ["--output-equals-embedding"])
        XCTAssertTrue(tied.hyper.tiedEmbeddings)
        XCTAssertFalse(copy.hyper.tiedEmbeddings)
        XCTAssertNil(try tied.weights.optionalWeight(LlamaTensorName.output))
        let tokens = tied.promptTokens(RandomGGUF.text)
        let a = try cpuRunner(tied).forward(tokens, logits: .all)
        let b = try cpuRunner(copy).forward(tokens, logits: .all)
        XCTAssertEqual(a, b)
        let own = try cpuRunner(RandomGGUF.model("llama3")).forward(tokens, logits: .all)
        XCTAssertGreaterThan(TensorDifference(name: "own head", test: own, reference: a).maxRelative, 1e-2)
        _ = try check(tied, path: RandomGGUF.path("llama3", ["--tied"]))
    }

    /// YaRN and LongRoPE scale more than the frequencies: refused at open, naming the type.
    func testUnsupportedScalingTypeIsRefusedByName() throws {
        for type in ["yarn", "longrope"] {
            XCTAssertThrowsError(try RandomGGUF.model("llama3", ["--scaling-type", type])) { error in
                let message = "\(error)"
                XCTAssertTrue(message.contains(type) && message.contains("rope.scaling.type"), message)
            }
        }
        // "none" turns a factor off, as llama.cpp reads it.
        XCTAssertNil(try RandomGGUF.model("qwen2", ["--scaling-type", "none"]).hyper.ropeDivisors(layer: 0))
    }

    private func cpuRunner(_ model: LoadedModel, source: WeightSource? = nil) throws -> ModelRunner {
        try Transformer(backend: CPUBackend(), weights: source ?? model.weights, capacity: 64, maxChunk: 7)
    }

    /// Prefill in chunks of 7 and three decode steps against the reference's logits of the whole prompt.
    @discardableResult
    private func check(_ model: LoadedModel, path: String, source: WeightSource? = nil, expectMatch: Bool = true,
                       file: StaticString = #filePath, line: UInt = #line) throws -> TensorDifference {
        let tokens = model.promptTokens(RandomGGUF.text)
        XCTAssertGreaterThan(tokens.count, 14, file: file, line: line)
        let logits = try RandomGGUF.logits(cpuRunner(model, source: source), tokens, prefill: tokens.count - 3)
        let vocab = model.hyper.vocabSize
        let reference = try RandomGGUF.referenceLogits(path, tokens, vocab: vocab)
        let diff = TensorDifference(name: "logits", test: logits, reference: reference)
        if expectMatch {
            XCTAssertLessThan(diff.maxRelative, 1e-4, file: file, line: line)
            assertSameTopOne(logits, reference, vocab: vocab, file: file, line: line)
        } else {
            XCTAssertGreaterThan(diff.maxRelative, 1e-2, "switching the feature off should change the logits", file: file, line: line)
        }
        return diff
    }
}
