import Foundation
@testable import LayerShare
import ModelFormats
import XCTest

/// LiSA layers inside the real model on the CPU backend.
final class LiSAModelTests: XCTestCase {
    /// A LiSA layer with identity alignment and nothing else computes plain Shared Attention from the
    /// layer before it: the logits of prefill and decode equal those of the SA plan 27-27 ← 26.
    func testIdentityAlignmentEqualsSharedAttention() throws {
        let model = try SharedModel.model()
        let h = model.hyper
        let identity = LiSALayerParameters.permutation(Array(0..<h.heads), layer: 27, kvHeads: h.kvHeads, hidden: h.hiddenSize,
                                                       headDim: h.headDim, rank: 0, ffnWidth: 0)
        var sources = [LayerSpec.ScoreSource](repeating: .own, count: h.layers)
        sources[27] = .lisa(identity)
        let lisa = try LayerSpec.resolve(sources, kvHeads: h.kvHeads)
        XCTAssertTrue(lisa[26].emitsLogProbabilities)
        XCTAssertEqual(lisa[27].cache(for: h).summary, "V[\(h.kvSize)]", "rank 0: no K of any kind cached")
        let sa = try SharingPlan.sharedAttention(spans: [27...27], model: model).layerSpecs(for: h)
        let tokens = Array(model.tokenizer.encode(SharingTestSupport.prompt).prefix(14))
        func run(_ specs: [LayerSpec]) throws -> [Float] {
            let runner = try SharingTestSupport.runner(model, .cpu, specs: specs, maxChunk: 5)
            var out = try runner.forward(Array(tokens.prefix(11)), logits: .all)
            for t in tokens.suffix(3) { out += try runner.forward([t], logits: .last) }
            return out
        }
        let a = try run(lisa), b = try run(sa)
        let diff = TensorDifference(name: "logits", test: a, reference: b)
        print("identity LiSA vs SA: abs \(diff.maxAbsolute) rel \(diff.maxRelative)")
        // exp(log P) vs P in float32: a few ulp per probability, through 3 more layers.
        XCTAssertLessThan(diff.maxRelative, 1e-4)
        let plain = try run(LayerSpec.standard(layers: h.layers, kvHeads: h.kvHeads))
        XCTAssertGreaterThan(TensorDifference(name: "vs plain", test: a, reference: plain).maxRelative, 1e-3, "sharing changes the logits")
    }

    /// Two consecutive LiSA layers (the second reads the first's own log P): decode after a prefill,
    /// and prefills in chunks of 3 and of 40, all give the same logits as one prefill of everything.
    func testDecodeAfterPrefillEqualsLongerPrefill() throws {
        let model = try SharedModel.model()
        let h = model.hyper
        var random = TestRandom("LiSAModelTests.chunks")
        var sources = [LayerSpec.ScoreSource](repeating: .own, count: h.layers)
        for l in [20, 21] { sources[l] = .lisa(LiSATestSupport.perturbedIdentity(layer: l, hyper: h, rank: 10, ffnWidth: 9, random: &random)) }
        let specs = try LayerSpec.resolve(sources, kvHeads: h.kvHeads)
        XCTAssertTrue(specs[19].emitsLogProbabilities && specs[20].emitsLogProbabilities && !specs[21].emitsLogProbabilities)
        XCTAssertEqual(specs[20].cache(for: h).summary, "Kr[\(h.kvHeads * 10)] + V[\(h.kvSize)]")
        let tokens = Array(model.tokenizer.encode(SharingTestSupport.prompt + " then it rained for a week.").prefix(24))
        let whole = try SharingTestSupport.runner(model, .cpu, specs: specs, maxChunk: 64).forward(tokens, logits: .all)
        let chunked = try SharingTestSupport.runner(model, .cpu, specs: specs, maxChunk: 3).forward(tokens, logits: .all)
        let stepped = try SharingTestSupport.runner(model, .cpu, specs: specs, maxChunk: 64)
        var decoded = try stepped.forward(Array(tokens.prefix(19)), logits: .all)
        for t in tokens.suffix(5) { decoded += try stepped.forward([t], logits: .last) }
        for (name, test) in [("chunks of 3", chunked), ("decode after prefill", decoded)] {
            let diff = TensorDifference(name: name, test: test, reference: whole)
            print("LiSA \(name) vs one prefill: abs \(diff.maxAbsolute) rel \(diff.maxRelative)")
            // Same kernels, other summation groupings in the BLAS products: float32 rounding only.
            XCTAssertLessThan(diff.maxRelative, 1e-4, name)
        }
        let plain = try SharingTestSupport.runner(model, .cpu, specs: nil).forward(tokens, logits: .all)
        XCTAssertGreaterThan(TensorDifference(name: "vs plain", test: whole, reference: plain).maxRelative, 1e-3)

        // The memory check counts the two log-probability tensors (at most 64 MiB each).
        var options = RunnerOptions()
        options.backend = .cpu
        options.context = 1024
        let without = try RunnerFactory.memoryNeed(model: model, options: options)
        options.specs = specs
        let with = try RunnerFactory.memoryNeed(model: model, options: options)
        XCTAssertEqual(with.activations - without.activations, 2 * (64 << 20))
        XCTAssertLessThan(with.kvCache, without.kvCache, "two layers keep k_r instead of K")
    }
}
