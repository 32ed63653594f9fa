import ArgumentParser
import Foundation
import LayerShare

struct LogitsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logits",
        abstract: "Write the float32 logits of every prompt position to a NumPy .npy file, shape [tokens, vocab]."
    )

    @OptionGroup var options: ModelOptions

    @Option(name: [.customShort("p"), .long], help: "Prompt text, @FILE, or - for standard input.")
    var prompt: String?

    @Option(help: "Token ids instead of a prompt, separated by commas (fed as they are; no BOS added).")
    var tokens: String?

    @Option(help: "Output .npy path.")
    var output: String

    @Option(name: .customLong("tokens-output"), help: "Also write the prompt's token ids (one per line) here.")
    var tokensOutput: String?

    func run() throws {
        guard (prompt == nil) != (tokens == nil) else { throw ValidationError("give exactly one of --prompt and --tokens") }
        let ids = try tokens.map(Self.parseIds)
        let model = try options.loadModel()
        let tokens = try ids ?? model.promptTokens(readPromptText(prompt!))
        guard !tokens.isEmpty else { throw ValidationError("the prompt encodes to no tokens") }
        if let bad = tokens.first(where: { !(0..<model.tokenizer.vocabSize).contains($0) }) {
            throw ValidationError("--tokens: id \(bad) is outside the vocabulary (0..<\(model.tokenizer.vocabSize))")
        }
        let runner = try RunnerFactory.make(model: model, options: try options.runnerOptions(model: model), log: note)
        let vocab = runner.hyper.vocabSize
        let writer = try NpyWriter(url: URL(fileURLWithPath: output), shape: [tokens.count, vocab])
        var failure: Error?
        try runner.forward(tokens, logits: .all, hidden: nil) { first, rows in
            guard failure == nil else { return }
            do {
                try FiniteLogits.check(rows, vocab: vocab, firstPosition: first) { "prompt token \(first + $0) of \(tokens.count)" }
                try writer.write(rows)
            } catch { failure = error }
        }
        if let failure {
            try? FileManager.default.removeItem(atPath: output)  // no file of garbage left behind
            throw failure
        }
        try writer.close()
        if let tokensOutput {
            try tokens.map(String.init).joined(separator: "\n").write(toFile: tokensOutput, atomically: true, encoding: .utf8)
        }
        note("wrote \(tokens.count) × \(vocab) logits to \(output) [\(runner.backendName)]")
    }

    static func parseIds(_ list: String) throws -> [Int] {
        try list.split(separator: ",").map { item in
            guard let id = Int(item.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("--tokens: \"\(item)\" is not a token id")
            }
            return id
        }
    }
}
