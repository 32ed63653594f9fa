import Foundation
@testable import LayerShare
import ModelFormats
import VulkanCompute
import XCTest

/// The Llama-3- and Qwen2-style random GGUFs (RandomGGUF) on Vulkan: against the CPU backend layer by
/// layer and through greedy decode steps, and against the float64 reference; on the device's own
/// tuning and the discrete-GPU one (other kernels: no fused RoPE on a CPU driver's defaults).
///
/// Tolerances: Vulkan vs CPU ≤ 1e-4 of the largest value (same stored weights, float32 both sides,
/// only summation order and sin/cos differ; SmolLM2 and Gemma use the same bound); vs the float64
/// reference ≤ 1e-4 as on the CPU (LlamaFamilyReferenceTests).
final class VulkanLlamaFamilyTests: XCTestCase {
    func testLlama3StyleMatchesCPUAndReference() throws {
        try check("llama3", [])
    }

    func testQwen2StyleMatchesCPUAndReference() throws {
        try check("qwen2", [])
    }

    /// Linear scaling on top of rope_freqs, and tied output: the RoPE tables and the tied head on the device.
    func testScaledAndTiedVariantsMatchCPU() throws {
        try check("llama3", ["--linear-scaling", "4", "--tied"])
        try check("qwen2", ["--linear-scaling", "2"])
    }

    /// Shared Attention on the Qwen2-style model: layer 1 projects only V, whose bias is then added
    /// alone; Vulkan against the CPU (prefill chunks and decode steps), and the plan does change the
    /// logits. Head-wise sharing is refused on a biased model.
    func testSharedAttentionWithBiasesMatchesCPU() throws {
        let model = try RandomGGUF.model("qwen2")
        let specs = try LayerSpec.resolve([.own, .shared(from: 0)], kvHeads: model.hyper.kvHeads)
        let cpu = try Transformer(backend: CPUBackend(), weights: model.weights, capacity: 64, maxChunk: 7, specs: specs)
        let device = try VulkanDevice()
        let gpu = try Transformer(backend: VulkanBackend(device: device), weights: model.weights, capacity: 64, maxChunk: 7, specs: specs)
        let tokens = model.promptTokens(RandomGGUF.text)
        let a = try RandomGGUF.logits(gpu, tokens, prefill: tokens.count - 3)
        let b = try RandomGGUF.logits(cpu, tokens, prefill: tokens.count - 3)
        XCTAssertLessThan(TensorDifference(name: "shared", test: a, reference: b).maxRelative, 1e-4)
        let plain = try Transformer(backend: CPUBackend(), weights: model.weights, capacity: 64, maxChunk: 7)
        XCTAssertGreaterThan(TensorDifference(name: "plan", test: b, reference: try RandomGGUF.logits(plain, tokens, prefill: tokens.count - 3)).maxRelative, 1e-2)
        // Zeroing the shared layer's V bias moves the result: the V-only path does add it.
        let unbiased = try Transformer(backend: CPUBackend(), weights: ZeroedTensor(model.weights, LlamaTensorName.attnVBias(1)),
                                       capacity: 64, maxChunk: 7, specs: specs)
        XCTAssertGreaterThan(TensorDifference(name: "no bias", test: try RandomGGUF.logits(unbiased, tokens, prefill: tokens.count - 3),
                                              reference: b).maxRelative, 1e-2)
        let heads = [HeadLayout.identity(layer: 0, kvHeads: 2), HeadLayout(sources: [WeightUnit(layer: 0, group: 0), WeightUnit(layer: 1, group: 1)])]
        XCTAssertThrowsError(try Transformer(backend: CPUBackend(), weights: model.weights, capacity: 64,
                                             specs: LayerSpec.resolve([.own, .own], heads: heads, kvHeads: 2))) { error in
            XCTAssertTrue("\(error)".contains("Q/K/V biases"), "\(error)")
        }
        assertQuiet(device)
    }

    /// Tied output and an untied copy of the embedding give the same logits on the device too.
    func testTiedAndUntiedOutputAgree() throws {
        let device = try VulkanDevice()
        var results: [[Float]] = []
        for options in [["--tied"], ["--output-equals-embedding"]] {
            let model = try RandomGGUF.model("llama3", options)
            let runner = try Transformer(backend: VulkanBackend(device: device), weights: model.weights, capacity: 64, maxChunk: 7)
            results.append(try runner.forward(model.promptTokens(RandomGGUF.text), logits: .all))
        }
        XCTAssertLessThan(TensorDifference(name: "tied vs untied", test: results[1], reference: results[0]).maxRelative, 1e-6)
        assertQuiet(device)
    }

    /// The rope kernels with frequency divisors against the CPU reference kernel (which computes angles
    /// in float64), odd head counts and positions, outputs poisoned past the rotated rows.
    func testRopeKernelWithDivisorsMatchesCPUKernel() throws {
        let device = try VulkanDevice()
        let kernels = try VulkanKernels(library: PipelineLibrary(device: device, compiler: ShaderCompiler(sourceDirectory: try ShaderDirectory.locate())))
        var random = TestRandom(name)
        for layout in [RopeLayout.adjacentPairs, .halfRotation] {
            for (rows, heads, headDim, start) in [(3, 5, 14, 7), (1, 3, 16, 8190), (9, 1, 6, 0)] {
                let divisors = random.floats(headDim / 2, 0.05, 9)
                let count = rows * heads * headDim
                let x = random.floats(count)
                let buffer = try DeviceBuffer(device: device, byteCount: (count + 1) * 4, label: "x")
                try buffer.upload(x + [.nan])
                let batch = try CommandBatch(device: device)
                try batch.begin()
                try kernels.rope(batch, x: buffer, rows: rows, heads: heads, headDim: headDim, startPosition: start, theta: 10_000,
                                 divisors: divisors, layout: layout)
                try batch.run()
                let y = try buffer.download(Float.self, count: count + 1)
                XCTAssertTrue(y[count].isNaN, "wrote past the end")
                var expected = x
                CPUKernels.rope(&expected, rows: rows, heads: heads, headDim: headDim, startPosition: start, theta: 10_000,
                                divisors: divisors, layout: layout)
                var plain = x
                CPUKernels.rope(&plain, rows: rows, heads: heads, headDim: headDim, startPosition: start, theta: 10_000, layout: layout)
                // Angle error ~2⁻²⁴ rad from the fixed-point turns, then float32 sin/cos and the rotation: 4e-6 as testRope.
                let diff = TensorDifference(name: "rope", test: Array(y[..<count]), reference: expected)
                XCTAssertLessThan(diff.maxAbsolute, 4e-6, "\(layout) rows \(rows) heads \(heads) d \(headDim) at \(start)")
                XCTAssertGreaterThan(TensorDifference(name: "unscaled", test: plain, reference: expected).maxAbsolute, 1e-2)
            }
        }
        assertQuiet(device)
    }

    private func check(_ style: String, _ options: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let model = try RandomGGUF.model(style, options)
        let tokens = model.promptTokens(RandomGGUF.text)
        let cpu = try Transformer(backend: CPUBackend(), weights: model.weights, capacity: 64, maxChunk: 7)
        let device = try VulkanDevice()
        let reference = try RandomGGUF.referenceLogits(RandomGGUF.path(style, options), tokens, vocab: model.hyper.vocabSize)
        for tuning in [nil, KernelTuning.defaults(for: device.info, as: .discreteGPU, environment: [:])] {
            let gpu = try Transformer(backend: VulkanBackend(device: device, profiling: false, tuning: tuning), weights: model.weights,
                                      capacity: 64, maxChunk: 7)
            let report = try BackendComparison.run(test: gpu, reference: cpu, prompt: tokens, greedyTokens: 4)
            let logits = try XCTUnwrap(report.logits)
            XCTAssertLessThan(logits.maxRelative, 1e-4, "\(style) \(options) logits", file: file, line: line)
            for d in report.layers { XCTAssertLessThan(d.maxRelative, 1e-4, "\(style) \(options) \(d.name)", file: file, line: line) }
            XCTAssertEqual(report.greedyAgreements, 4, "\(style) \(options) greedy", file: file, line: line)

            let vsReference = try RandomGGUF.logits(gpu, tokens, prefill: tokens.count - 3)
            let diff = TensorDifference(name: "logits", test: vsReference, reference: reference)
            print("\(style) \(options) Vulkan (\(tuning == nil ? "device" : "discrete") tuning): vs CPU rel \(logits.maxRelative), vs reference rel \(diff.maxRelative)")
            XCTAssertLessThan(diff.maxRelative, 1e-4, "\(style) \(options) vs reference", file: file, line: line)
            assertSameTopOne(vsReference, reference, vocab: model.hyper.vocabSize, file: file, line: line)
        }
        assertQuiet(device, file: file, line: line)
    }

    private func assertQuiet(_ device: VulkanDevice, file: StaticString = #filePath, line: UInt = #line) {
        let messages = device.instance.validationLog?.messages ?? []
        XCTAssertTrue(messages.isEmpty, messages.joined(separator: "\n"), file: file, line: line)
    }
}
