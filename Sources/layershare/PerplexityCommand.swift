import ArgumentParser
import Foundation
import LayerShare

struct PerplexityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ppl",
        abstract: "Perplexity of a text file under the model.",
        discussion: """
        --method sliding (the default): windows of --window tokens advanced by --stride, each from an empty cache; every token but the first is scored once.

        --method llama.cpp: llama-perplexity's scoring, comparable with published llama.cpp numbers: ⌊tokens / --window⌋ non-overlapping chunks (the tail that fills no chunk is dropped; --chunks N keeps the first N), each from an empty cache with its first token replaced by BOS when the model adds BOS, and only the second half of each chunk scored (window − window/2 − 1 tokens per chunk). Needs at least 2 × --window tokens. Running values go to stderr as [chunk]ppl, and stdout gets `Final estimate: PPL = X +/- SE` as llama.cpp prints it.

        Progress goes to stderr; the last line of stdout is `perplexity: X` with the number of scored tokens.
        """
    )

    enum Method: String, ExpressibleByArgument, CaseIterable {
        case sliding
        case llamaCpp = "llama.cpp"
    }

    @Option(help: "How to cut and score the text: sliding or llama.cpp (see below).")
    var method: Method = .sliding

    @Option(parsing: .unconditional, help: "--method llama.cpp: score only the first N chunks (llama.cpp's --chunks).")
    var chunks: Int?

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
        if method == .llamaCpp { return try runLlamaCpp() }
        if chunks != nil { throw ValidationError("--chunks applies to --method llama.cpp") }
        // Options first, so a bad --window is blamed on itself and not on the context it sets.
        var evaluation = try PerplexityEvaluation(window: window, stride: stride)
        let maxTokens = scoreTokens ?? oldMaxTokens
        if let maxTokens { try requireNonNegative(maxTokens, "--score-tokens") }
        let text = try readTextFile(file, "--file")
        let model = try options.loadModel()
        var tokens = model.promptTokens(text, parseSpecial: false)
        if let maxTokens { tokens = Array(tokens.prefix(maxTokens)) }
        evaluation.beginning = model.beginningToken
        let runner = try makeRunner(model)
        note("scoring \(tokens.count) tokens of \(file) with window \(evaluation.window), stride \(evaluation.stride) [\(runner.backendName)]")
        let start = Date()
        let result = try evaluation.run(runner, tokens: tokens) { done, total in
            let elapsed = Date().timeIntervalSince(start)
            let memory = runner.deviceMemory.map { ", device memory \($0.current) bytes" } ?? ""
            note(String(format: "  %d/%d tokens scored, %.0f tok/s", done, total, Double(done) / max(elapsed, 1e-9)) + memory)
        }
        print(String(format: "perplexity: %.4f (%d tokens scored, mean NLL %.4f nats)", result.value, result.count, result.meanNegativeLogLikelihood))
    }

    /// A runner whose context defaults to the window.
    func makeRunner(_ model: LoadedModel) throws -> ModelRunner {
        var runnerOptions = try options.runnerOptions(model: model)
        if runnerOptions.context == nil {
            runnerOptions.context = window
            runnerOptions.contextLabel = "--window \(window)"
        }
        return try RunnerFactory.make(model: model, options: runnerOptions, log: note)
    }
}
