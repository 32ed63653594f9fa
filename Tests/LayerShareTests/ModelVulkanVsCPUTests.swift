import Foundation
import LayerShare
import XCTest

final class ModelVulkanVsCPUTests: XCTestCase {
    func testVulkanMatchesCPUOn64TokenPromptAnd32GreedyTokens() throws {
        try checkAgainstCPU(tuning: { _ in nil })
    }

    /// The discrete-GPU choices on this device (row-major storage-buffer weights, matvec.comp decode,
    /// tiled matmul.comp prefill, no fused products, the non-lanes decode attention, staged reads):
    /// the same numbers as the device's own path.
    func testDiscreteGPUTuningMatchesCPU() throws {
        try checkAgainstCPU(tuning: { KernelTuning.defaults(for: $0.info, as: .discreteGPU, environment: [:]) })
    }

    /// A 64-token prompt in two prefill chunks and 32 greedy tokens on Vulkan (with `tuning` of the
    /// device; nil: its defaults) against the CPU backend.
    func checkAgainstCPU(tuning: (VulkanDevice) -> KernelTuning?) throws {
        let model = try SharedModel.model()
        var tokens = model.tokenizer.encode("""
        The history of the printing press begins in the fifteenth century, when Johannes Gutenberg combined \
        movable metal type, oil-based inks and a wooden press adapted from wine making. Within fifty years, \
        presses operated in more than two hundred cities across Europe, and the price of books fell sharply. \
        Scholars could compare identical copies of a text for the first time, and errors stopped multiplying.
        """)
        XCTAssertGreaterThanOrEqual(tokens.count, 64)
        tokens = Array(tokens.prefix(64))
        let device = try VulkanDevice()
        var options = RunnerOptions()
        options.context = 128
        options.maxChunk = 48  // two prefill chunks: exercises startPosition > 0 in prefill
        options.kernelTuning = tuning(device)
        let gpu = try RunnerFactory.make(model: model, options: options, device: device)
        options.backend = .cpu
        let cpu = try RunnerFactory.make(model: model, options: options)
        let report = try BackendComparison.run(test: gpu, reference: cpu, prompt: tokens, greedyTokens: 32)
        for d in report.layers { print(String(format: "%@: abs %.3e rel %.3e", d.name, d.maxAbsolute, d.maxRelative)) }
        let logits = report.logits!
        print("logits: abs \(logits.maxAbsolute) rel \(logits.maxRelative); greedy agreement \(report.greedyAgreements)/\(report.greedySteps)")
        // Both paths dequantize the same stored weights exactly and accumulate in float32; only the
        // summation order differs, which perturbs results by ~1e-6 relative per op. Through 30 layers
        // that stays ≲1e-4 of the logit range.
        XCTAssertLessThan(logits.maxRelative, 1e-4)
        for d in report.layers { XCTAssertLessThan(d.maxRelative, 1e-4, d.name) }
        XCTAssertEqual(report.greedySteps, 32)
        XCTAssertEqual(report.greedyAgreements, 32, "first difference at step \(report.firstDisagreement ?? -1)")
        if device.info.separateMemoryForced {  // LAYERSHARE_FORCE_DISCRETE=1: every weight byte came through staging
            let weights = try XCTUnwrap((gpu as? Transformer<VulkanBackend>)?.backend.weightBytes)
            XCTAssertGreaterThanOrEqual(device.staged.uploaded, weights)
        }
        let messages = device.instance.validationLog?.messages ?? []
        XCTAssertTrue(messages.isEmpty, messages.joined(separator: "\n"))
    }
}

/// The separate-op path (norm, product, add / swiglu / rope dispatches: what devices without the
/// lanes kernel run) gives the fused path's results up to float32 summation order.
final class ModelFusedProductTests: XCTestCase {
    func testUnfusedVulkanPathMatchesFusedPath() throws {
        let model = try SharedModel.model()
        let tokens = model.tokenizer.encode("Fused or not, a product is a product: these logits must agree.")
        var options = RunnerOptions()
        options.context = 64
        options.maxChunk = 8  // several prefill chunks, the last one partial
        let device = try VulkanDevice()
        let fused = try RunnerFactory.makeVulkan(model: model, options: options, device: device)
        var t = fused.backend.kernels.tuning
        t.decodeLanesRows = 0
        t.prefillLanes = false
        options.kernelTuning = t
        let unfused = try RunnerFactory.makeVulkan(model: model, options: options, device: device)
        func relative(_ a: [Float], _ b: [Float]) -> Float {
            let range = b.map(abs).max()!
            return zip(a, b).map { abs($0 - $1) }.max()! / range
        }
        // Same tolerance as Vulkan vs CPU: only the summation order differs.
        let prefill = relative(try fused.runner.forward(tokens, logits: .all), try unfused.runner.forward(tokens, logits: .all))
        XCTAssertLessThan(prefill, 1e-4)
        var decode: Float = 0
        for t in [42, 7, 1000, 5] {
            decode = max(decode, relative(try fused.runner.forward([t], logits: .last), try unfused.runner.forward([t], logits: .last)))
        }
        XCTAssertLessThan(decode, 1e-4)
        print("fused vs unfused Vulkan logits: prefill rel \(prefill), decode rel \(decode)")
        let messages = device.instance.validationLog?.messages ?? []
        XCTAssertTrue(messages.isEmpty, messages.joined(separator: "\n"))
    }
}

/// The read path devices without unified memory take (results copied into a reused host-visible buffer
/// inside the step's batch) gives the same logits as reading mapped device memory.
final class ModelStagedReadTests: XCTestCase {
    func testStagedReadsGiveIdenticalLogits() throws {
        let model = try SharedModel.model()
        let tokens = model.tokenizer.encode("A staged read must not change a single bit.")
        var options = RunnerOptions()
        options.context = 64
        let device = try VulkanDevice()
        let direct = try RunnerFactory.makeVulkan(model: model, options: options, device: device)
        let staged = try RunnerFactory.makeVulkan(model: model, options: options, device: device)
        staged.backend.stagedReads = true
        direct.backend.stagedReads = false
        XCTAssertEqual(try staged.runner.forward(tokens, logits: .all), try direct.runner.forward(tokens, logits: .all))
        // Decode steps reuse the readback buffer.
        for t in [42, 7, 1000] {
            XCTAssertEqual(try staged.runner.forward([t], logits: .last), try direct.runner.forward([t], logits: .last))
        }
        let messages = device.instance.validationLog?.messages ?? []
        XCTAssertTrue(messages.isEmpty, messages.joined(separator: "\n"))
    }
}
