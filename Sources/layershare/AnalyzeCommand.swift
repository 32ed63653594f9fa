import ArgumentParser
import Foundation
import LayerShare

struct AnalyzeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "analyze",
        abstract: "Measure how similar attention is across layers and heads (CPU backend), for choosing what to share.",
        discussion: """
        Runs the model over calibration text in sequences of --tokens tokens (each from position 0) and records every layer's causal attention maps. Writes to --output: similarity.json (layer × layer cosine and Jensen–Shannon divergence in nats, per-head cosine, each head's best match in the previous layer and the best one-to-one head permutation), and heatmaps similarity-cosine.{svg,png} and similarity-jsd.{svg,png}. Prints the most similar spans and the least similar layers.
        """
    )

    @Option(help: "Model: a .gguf file or a Hugging Face directory. Default: the bootstrap model.")
    var model: String?

    @Option(help: "Calibration text file.")
    var file: String

    @Option(parsing: .unconditional, help: "Tokens per sequence.")
    var tokens = 256

    @Option(parsing: .unconditional, help: "Number of sequences (consecutive, from the start of the text).")
    var sequences = 4

    @Option(help: "Output directory.")
    var output = "analysis"

    @Option(parsing: .unconditional, help: "Cosine with the span's source layer that the summary's spans must reach.")
    var threshold = SharingDefaults.threshold

    func run() throws {
        guard threshold.isFinite else { throw ValidationError("--threshold must be a finite number, got \(threshold)") }
        let text = try readTextFile(file, "--file")
        let model = try loadModel(model)
        note("analysing attention on \(sequences) × \(tokens) tokens of \(file) [cpu]")
        let result = try AttentionAnalysis.run(model: model, text: text, fileLabel: file, tokensPerSequence: tokens,
                                               sequences: sequences, progress: note)
        let written = try result.writeOutputs(to: output)
        print(result.summary(threshold: threshold))
        print("wrote " + written.joined(separator: ", "))
    }
}

enum SharingDefaults {
    static let threshold = 0.7
}

/// Loads --model (or the default model) with a helpful error when it is missing.
func loadModel(_ path: String?) throws -> LoadedModel {
    let path = path ?? LoadedModel.defaultPath()
    guard FileManager.default.fileExists(atPath: path) else {
        throw ValidationError("model not found at \(path). Run tools/bootstrap to fetch the default model, or pass --model PATH.")
    }
    return try LoadedModel(path: path)
}
