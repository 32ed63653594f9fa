import Foundation
import LayerShare
import XCTest

/// A LiSA plan on the default model, Vulkan against the CPU backend end to end.
final class VulkanLiSAModelTests: XCTestCase {
    /// Layers 20 and 21 LiSA (layer 19 emits log P for 20, 20 for 21), rank 10, FFN width 9, random
    /// but small parameters around a random head permutation. A 40-token prefill in chunks of 16
    /// (so chunks start mid-context and the log P rows cross chunk boundaries), then 4 decode steps.
    /// Tolerance as for the plain model (ModelVulkanVsCPUTests): 1e-4 of the logit range; the LiSA
    /// layers add float32 ops of the same kind (sums of ≤ 64 terms, exp/log), so no more error.
    func testLiSAPlanVulkanMatchesCPU() throws {
        let model = try SharedModel.model()
        let h = model.hyper
        var random = TestRandom(name)
        var sources = [LayerSpec.ScoreSource](repeating: .own, count: h.layers)
        for l in [20, 21] { sources[l] = .lisa(Self.randomParameters(layer: l, hyper: h, random: &random)) }
        let specs = try LayerSpec.resolve(sources, kvHeads: h.kvHeads)
        let text = SharingTestSupport.prompt + " the crew returned safely to Earth eight days later, watched by millions on television."
        let tokens = Array(model.tokenizer.encode(text).prefix(40))
        XCTAssertEqual(tokens.count, 40)

        let device = try VulkanDevice()
        let gpu = try SharingTestSupport.runner(model, .vulkan, specs: specs, context: 64, maxChunk: 16, device: device)
        let cpu = try SharingTestSupport.runner(model, .cpu, specs: specs, context: 64, maxChunk: 16)
        let gpuPrefill = try gpu.forward(tokens, logits: .all), cpuPrefill = try cpu.forward(tokens, logits: .all)
        var diffs = [TensorDifference(name: "prefill", test: gpuPrefill, reference: cpuPrefill)]
        var next = Array(cpuPrefill.suffix(h.vocabSize)).withUnsafeBufferPointer { Sampler.argmax($0) }
        for step in 0..<4 {
            let g = try gpu.forward([next], logits: .last), c = try cpu.forward([next], logits: .last)
            diffs.append(TensorDifference(name: "decode \(step)", test: g, reference: c))
            next = c.withUnsafeBufferPointer { Sampler.argmax($0) }
        }
        for d in diffs {
            print("LiSA vulkan vs cpu \(d.name): abs \(d.maxAbsolute) rel \(d.maxRelative)")
            XCTAssertLessThan(d.maxRelative, 1e-4, d.name)
        }
        // The LiSA layers matter: the same prefill without them differs clearly.
        let baseline = try SharingTestSupport.runner(model, .cpu, specs: nil, context: 64, maxChunk: 16).forward(tokens, logits: .all)
        let effect = TensorDifference(name: "effect", test: cpuPrefill, reference: baseline)
        print("LiSA plan vs baseline: rel \(effect.maxRelative)")
        XCTAssertGreaterThan(effect.maxRelative, 1e-2, "the LiSA layers did not change the logits")
        let messages = device.instance.validationLog?.messages ?? []
        XCTAssertTrue(messages.isEmpty, messages.joined(separator: "\n"))
    }

    /// A random head permutation, then every array perturbed: small mixing and FFN weights, low-rank
    /// projections giving q_r·k_r/√d of order 0.1...1, and for each KV group 5 distinct RoPE pairs at
    /// the model's own frequencies.
    static func randomParameters(layer: Int, hyper h: LlamaHyperParameters, random: inout TestRandom) -> LiSALayerParameters {
        let rank = 10, ffnWidth = 9
        var permutation = Array(0..<h.heads)
        for i in stride(from: h.heads - 1, to: 0, by: -1) { permutation.swapAt(i, random.int(0...i)) }
        var frequencies: [Float] = []
        for _ in 0..<h.kvHeads {
            var pairs = Array(0..<(h.headDim / 2))
            for i in 0..<(rank / 2) { pairs.swapAt(i, random.int(i..<pairs.count)) }
            frequencies += pairs.prefix(rank / 2).map { Float(pow(Double(h.ropeTheta), -2 * Double($0) / Double(h.headDim))) }
        }
        var p = LiSALayerParameters.permutation(permutation, layer: layer, kvHeads: h.kvHeads, hidden: h.hiddenSize, headDim: h.headDim,
                                                rank: rank, ffnWidth: ffnWidth, ropeFrequencies: frequencies)
        func perturbed(_ values: [Float], _ size: Float) -> [Float] {
            zip(values, random.floats(values.count, -size, size)).map { $0 + $1 }
        }
        p.headMix = perturbed(p.headMix, 0.1)
        p.ffnIn = perturbed(p.ffnIn, 0.3); p.ffnInBias = perturbed(p.ffnInBias, 0.3)
        p.ffnOut = perturbed(p.ffnOut, 0.3); p.outBias = perturbed(p.outBias, 0.3)
        p.queryLowRank = perturbed(p.queryLowRank, 0.06); p.keyLowRank = perturbed(p.keyLowRank, 0.06)
        return p
    }
}
