import Foundation
import LayerShare
import XCTest

final class ModelVulkanVsCPUTests: XCTestCase {
    func testVulkanMatchesCPUOn64TokenPromptAnd32GreedyTokens() throws {
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
        let messages = device.instance.validationLog?.messages ?? []
        XCTAssertTrue(messages.isEmpty, messages.joined(separator: "\n"))
    }
}
