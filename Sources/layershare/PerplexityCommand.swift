import ArgumentParser
import Foundation
import LayerShare

struct PerplexityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ppl",
        abstract: "Perplexity of a text file under the model (sliding windows).",
        discussion: "Progress goes to stderr; the last line of stdout is `perplexity: X` with the number of scored tokens."
    )

    @OptionGroup var options: ModelOptions

    @Option(help: "Text file to score.")
    var file: String

    @Option(parsing: .unconditional, help: "Tokens per window (each window starts from an empty cache).")
    var window = 512

    @Option(parsing: .unconditional, help: "Window advance; tokens scored per window after the first (default: the window, i.e. no overlap).")
    var stride: Int?

    @Option(name: .customLong("score-tokens"), parsing: .unconditional, help: "Score only the first N tokens of the file.")
    var scoreTokens: Int?

    @Option(name: .customLong("max-tokens"), parsing: .unconditional, help: .hidden)
    var oldMaxTokens: Int?  // the name before --score-tokens (--max-tokens now means tokens to generate)

    func run() throws {
        // Options first, so a bad --window is blamed on itself and not on the context it sets.
        var evaluation = try PerplexityEvaluation(window: window, stride: stride)
        let maxTokens = scoreTokens ?? oldMaxTokens
        if let maxTokens { try requireNonNegative(maxTokens, "--score-tokens") }
        let text = try readTextFile(file, "--file")
        let model = try options.loadModel()
        var tokens = model.promptTokens(text, parseSpecial: false)
        if let maxTokens { tokens = Array(tokens.prefix(maxTokens)) }
        evaluation.beginning = model.beginningToken
        var runnerOptions = try options.runnerOptions(model: model)
        if runnerOptions.context == nil {
            runnerOptions.context = window
            runnerOptions.contextLabel = "--window \(window)"
        }
        let runner = try RunnerFactory.make(model: model, options: runnerOptions, log: note)
        note("scoring \(tokens.count) tokens of \(file) with window \(evaluation.window), stride \(evaluation.stride) [\(runner.backendName)]")
        let start = Date()
        let result = try evaluation.run(runner, tokens: tokens) { done, total in
            let elapsed = Date().timeIntervalSince(start)
            let memory = runner.deviceMemory.map { ", device memory \($0.current) bytes" } ?? ""
            note(String(format: "  %d/%d tokens scored, %.0f tok/s", done, total, Double(done) / max(elapsed, 1e-9)) + memory)
        }
        print(String(format: "perplexity: %.4f (%d tokens scored, mean NLL %.4f nats)", result.value, result.count, result.meanNegativeLogLikelihood))
    }
}
