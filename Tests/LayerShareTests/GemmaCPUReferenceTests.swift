import Foundation
import LayerShare
import ModelFormats
import XCTest

/// Gemma-3 270M on the CPU path against tools/reference_forward.py (float64 NumPy, written from
/// llama.cpp's gemma3 graph: QK-norm, post-norms, GeGLU, embedding scale, NEOX RoPE with two bases,
/// sliding-window local layers).
final class GemmaCPUReferenceTests: XCTestCase {
    func testHyperParametersFromTheFile() throws {
        let h = try SharedGemma.model().hyper
        XCTAssertEqual(h.architecture, "gemma3")
        XCTAssertEqual([h.layers, h.hiddenSize, h.heads, h.kvHeads, h.headDim, h.ffnSize], [18, 640, 4, 1, 256, 2048])
        XCTAssertTrue(h.tiedEmbeddings)
        XCTAssertEqual(h.ropeLayout, .halfRotation)
        XCTAssertEqual(h.options.slidingWindow, 512)
        XCTAssertEqual((0..<18).filter { !h.options.isLocal($0) }, [5, 11, 17])
        XCTAssertEqual(h.options.ropeTheta(layer: 0, global: h.ropeTheta), 10000)
        XCTAssertEqual(h.options.ropeTheta(layer: 5, global: h.ropeTheta), 1_000_000)
        XCTAssertEqual(h.options.attentionScale(headDim: h.headDim), 1 / 16)
        XCTAssertEqual(h.options.embeddingScale, Float(640).squareRoot())
        XCTAssertEqual(try SharedGemma.model().promptTokens("The capital of France is"), [2, 818, 5279, 529, 7001, 563])
    }

    /// A prompt and its greedy continuation: prefill rows, then one row per decode step. The
    /// reference scores the whole sequence at once; the same top-1 in every row means its own greedy
    /// continuation is the same text.
    func testCPULogitsAndGreedyTextMatchFloat64Reference() throws {
        let model = try SharedGemma.model()
        let prompt = model.promptTokens("The quick brown fox jumps over the lazy dog. In 1969, Apollo 11 landed on the")
        var options = RunnerOptions()
        options.backend = .cpu
        options.context = 64
        let runner = try RunnerFactory.make(model: model, options: options)
        var logits = try runner.forward(prompt, logits: .all)
        var ids = prompt
        let vocab = model.hyper.vocabSize
        for _ in 0..<8 {
            let next = logits[(logits.count - vocab)...].withContiguousStorageIfAvailable { Sampler.argmax($0) }!
            ids.append(next)
            logits += try runner.forward([next], logits: .last)
        }
        let reference = try SharedGemma.referenceLogits(ids)
        let diff = TensorDifference(name: "logits", test: logits, reference: reference)
        let text = try model.tokenizer.decode(Array(ids[prompt.count...]))
        print("Gemma-3 CPU vs float64 reference (\(ids.count) tokens, greedy \(text.debugDescription)): max abs \(diff.maxAbsolute), max rel \(diff.maxRelative)")
        XCTAssertLessThan(diff.maxRelative, 1e-3)
        assertSameTopOne(logits, reference, vocab: vocab)
        XCTAssertTrue(text.contains("Moon") || text.contains("moon"), "greedy continuation: \(text)")
    }

    /// The window only matters past 512 tokens, so it is forced to 8 on both sides: chunks of 5
    /// rows start at positions that cut through windows, and the last rows run as decode steps.
    func testSlidingWindowMatchesReference() throws {
        let model = try SharedGemma.model()
        let tokens = model.promptTokens("Gemma keeps a short window of recent tokens in most layers and looks at everything in a few.")
        XCTAssertGreaterThan(tokens.count, 16)
        let window = 8
        let source = OverriddenHyper(model.weights) { $0.options.slidingWindow = window }
        let runner = try Transformer(backend: CPUBackend(), weights: source, capacity: 64, maxChunk: 5)
        let decoded = 3, prefill = tokens.count - decoded
        var logits = try runner.forward(Array(tokens[..<prefill]), logits: .all)
        for t in tokens[prefill...] { logits += try runner.forward([t], logits: .last) }

        let vocab = model.hyper.vocabSize
        let reference = try SharedGemma.referenceLogits(tokens, extra: ["--sliding-window", "\(window)"])
        let diff = TensorDifference(name: "windowed logits", test: logits, reference: reference)
        print("Gemma-3 CPU vs reference, window \(window): max abs \(diff.maxAbsolute), max rel \(diff.maxRelative)")
        XCTAssertLessThan(diff.maxRelative, 1e-3)
        assertSameTopOne(logits, reference, vocab: vocab)

        // The window changes the rows past it (else this test could not fail): against the full window, late rows move.
        let full = try RunnerFactory.make(model: model, options: { var o = RunnerOptions(); o.backend = .cpu; o.context = 64; return o }())
            .forward(tokens, logits: .all)
        XCTAssertEqual(TensorDifference(name: "early rows", test: logitRows(logits, 0..<window, vocab: vocab),
                                        reference: logitRows(full, 0..<window, vocab: vocab)).maxRelative, 0, accuracy: 1e-5)
        XCTAssertGreaterThan(TensorDifference(name: "late rows", test: logitRows(logits, window..<tokens.count, vocab: vocab),
                                              reference: logitRows(full, window..<tokens.count, vocab: vocab)).maxRelative, 1e-2)
    }
}
