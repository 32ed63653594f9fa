import Foundation
@testable import LayerShare
import ModelFormats
import VulkanCompute
import XCTest

/// Gemma-3 270M on Vulkan against the CPU backend (which GemmaCPUReferenceTests checks against the
/// float64 reference): QK-norm, post-norms, GeGLU, embedding scale, the sliding-window kernels and the
/// tied embedding stored in row parts where it exceeds one binding.
final class GemmaVulkanVsCPUTests: XCTestCase {
    static let text = "The history of the printing press begins in the fifteenth century, when Johannes Gutenberg combined movable type and ink."

    func testVulkanMatchesCPUOnPromptAndGreedyTokens() throws {
        let model = try SharedGemma.model()
        let device = try VulkanDevice()
        var options = RunnerOptions()
        options.context = 64
        options.maxChunk = 10  // several prefill chunks: startPosition > 0 in prefill
        let gpu = try RunnerFactory.make(model: model, options: options, device: device)
        options.backend = .cpu
        let cpu = try RunnerFactory.make(model: model, options: options)
        try compare(gpu, cpu, prompt: model.promptTokens(Self.text), greedy: 8, device: device)

        // lavapipe binds at most 128 MiB; the Q8_0 table is 178 MB, so it must be in parts there, each within the limit.
        let embedding = try XCTUnwrap(gpu as? Transformer<VulkanBackend>).embedding
        let table = try model.weights.weight(LlamaTensorName.tokenEmbedding)
        let binding = min(device.info.maxStorageBufferRange, device.info.maxMemoryAllocationSize > 0 ? device.info.maxMemoryAllocationSize : .max)
        XCTAssertEqual(embedding.rowParts.isEmpty, table.data.count + 32 <= binding)
        XCTAssertEqual(embedding.rowParts.map(\.matrix.rows).reduce(0, +), embedding.rows)
        for part in embedding.rowParts { XCTAssertLessThanOrEqual(part.matrix.buffer.byteCount, binding) }
    }

    /// The window forced to 8 so the WINDOW kernels run (prefill chunks cutting through windows,
    /// decode past the window), with the device's own tuning and the discrete-GPU one (its kernels are
    /// slow on a CPU driver, so fewer decode steps there: ~1 s each).
    func testSlidingWindowKernelsMatchCPU() throws {
        let model = try SharedGemma.model()
        let source = OverriddenHyper(model.weights) { $0.options.slidingWindow = 8 }
        let cpu = try Transformer(backend: CPUBackend(), weights: source, capacity: 64, maxChunk: 5)
        let device = try VulkanDevice()
        for (tuning, steps) in [(nil, 8), (KernelTuning.defaults(for: device.info, as: .discreteGPU, environment: [:]), 3)] {
            let gpu = try Transformer(backend: VulkanBackend(device: device, profiling: false, tuning: tuning), weights: source,
                                      capacity: 64, maxChunk: 5)
            try compare(gpu, cpu, prompt: model.promptTokens(Self.text), greedy: steps, device: device)
        }
    }

    private func compare(_ gpu: ModelRunner, _ cpu: ModelRunner, prompt: [Int], greedy: Int, device: VulkanDevice) throws {
        XCTAssertGreaterThan(prompt.count, 20)
        let report = try BackendComparison.run(test: gpu, reference: cpu, prompt: prompt, greedyTokens: greedy)
        let logits = try XCTUnwrap(report.logits)
        print("Gemma-3 Vulkan vs CPU: logits abs \(logits.maxAbsolute) rel \(logits.maxRelative); greedy \(report.greedyAgreements)/\(report.greedySteps); "
              + "worst layer rel \(report.layers.map(\.maxRelative).max() ?? 0)")
        // Same stored weights, float32 on both sides: only summation order differs (as for SmolLM2).
        XCTAssertLessThan(logits.maxRelative, 1e-4)
        for d in report.layers { XCTAssertLessThan(d.maxRelative, 1e-4, d.name) }
        XCTAssertEqual(report.greedySteps, greedy)
        XCTAssertEqual(report.greedyAgreements, greedy, "first difference at step \(report.firstDisagreement ?? -1)")
        let messages = device.instance.validationLog?.messages ?? []
        XCTAssertTrue(messages.isEmpty, messages.joined(separator: "\n"))
    }
}
