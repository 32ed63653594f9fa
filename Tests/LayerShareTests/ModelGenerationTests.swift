import Foundation
import LayerShare
import XCTest

final class ModelGenerationTests: XCTestCase {
    private func greedy(_ backend: BackendKind, prompt: String, tokens: Int) throws -> String {
        let model = try SharedModel.model()
        var options = RunnerOptions()
        options.backend = backend
        options.context = 64
        let runner = try RunnerFactory.make(model: model, options: options)
        var sampler = try Sampler(temperature: 0)
        let generator = Generator(runner: runner, tokenizer: model.tokenizer)
        let (ids, _) = try generator.generate(promptTokens: model.tokenizer.encode(prompt), maxTokens: tokens, sampler: &sampler)
        return try model.tokenizer.decode(ids)
    }

    func testCapitalOfFranceIsParisOnCPU() throws {
        let text = try greedy(.cpu, prompt: "The capital of France is", tokens: 4)
        XCTAssertTrue(text.hasPrefix(" Paris"), "got \(text.debugDescription)")
    }

    func testCapitalOfFranceIsParisOnVulkan() throws {
        let text = try greedy(.vulkan, prompt: "The capital of France is", tokens: 4)
        XCTAssertTrue(text.hasPrefix(" Paris"), "got \(text.debugDescription)")
    }

    func testOverlongPromptIsAClearError() throws {
        let model = try SharedModel.model()
        var options = RunnerOptions()
        options.backend = .cpu
        options.context = 8
        let runner = try RunnerFactory.make(model: model, options: options)
        var sampler = try Sampler(temperature: 0)
        let generator = Generator(runner: runner, tokenizer: model.tokenizer)
        XCTAssertThrowsError(try generator.generate(promptTokens: Array(repeating: 100, count: 20), maxTokens: 2, sampler: &sampler)) { error in
            XCTAssertTrue("\(error)".contains("does not fit the context"), "\(error)")
        }
        XCTAssertThrowsError(try runner.forward([model.hyper.vocabSize + 5])) { error in
            XCTAssertTrue("\(error)".contains("outside the vocabulary"), "\(error)")
        }
    }
}
