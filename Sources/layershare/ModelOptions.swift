import ArgumentParser
import Foundation
import LayerShare

/// Options shared by every command that runs a model.
struct ModelOptions: ParsableArguments {
    @Option(name: [.customShort("m"), .long],
            help: "Model: a .gguf file or a Hugging Face directory (config.json + *.safetensors). Default: the bootstrap model.")
    var model: String?

    @Option(help: "Backend: vulkan or cpu (OpenBLAS reference).")
    var backend: BackendKind = .vulkan

    @Option(help: "Vulkan device index or name fragment (default: LAYERSHARE_DEVICE, else the most capable device).")
    var device: String?

    @Option(name: [.customShort("c"), .customLong("ctx-size"), .customLong("ctx")], parsing: .unconditional,
            help: "Context length in tokens (default: the model's, capped so the KV cache fits the device).")
    var ctx: Int?

    @Option(parsing: .unconditional, help: "Rows per prefill chunk.")
    var chunk: Int = 128

    @Option(help: "Attention-sharing plan (JSON from `layershare plan`), validated against the model.")
    var plan: String?

    var modelPath: String { model ?? LoadedModel.defaultPath() }

    func loadModel() throws -> LoadedModel {
        let path = modelPath
        guard FileManager.default.fileExists(atPath: path) else {
            throw ValidationError("model not found at \(path). Run tools/bootstrap to fetch the default model, or pass --model PATH.")
        }
        let model = try LoadedModel(path: path)
        if let plan {
            // Validate early so a bad plan fails before any weights are uploaded.
            let loaded = try SharingPlan.load(path: plan, model: model)
            note("plan \(plan): " + loaded.summary(weights: model.weights).replacingOccurrences(of: "\n", with: "; "))
            if loaded.lisa != nil || !loaded.spans.isEmpty {
                note("  " + AttentionCost.comparison(hyper: model.hyper, specs: try loaded.layerSpecs(for: model.hyper), context: ctx ?? 1024))
            }
        }
        return model
    }

    /// The model on its backend for generation, with the lines `generate` and `serve` print about it.
    func loadRunner() throws -> (LoadedModel, ModelRunner) {
        let model = try loadModel()
        let runner = try RunnerFactory.make(model: model, options: try runnerOptions(model: model), log: note)
        note("[\(runner.backendName), context \(runner.capacity), weights \(formatBytes(runner.weightBytes)), KV cache \(formatBytes(runner.kvCacheBytes))]")
        if model.paddedVocabulary > 0 {
            note("note: the embedding table has \(model.paddedVocabulary) rows past the tokenizer's \(model.tokenizer.vocabSize) tokens (padding); they are never sampled")
        }
        return (model, runner)
    }

    /// Runner options from the flags; `--plan` is read and checked against `model` (its weights hash is memoized).
    func runnerOptions(model: LoadedModel, backend override: BackendKind? = nil) throws -> RunnerOptions {
        var o = RunnerOptions()
        o.backend = override ?? backend
        o.device = device
        o.context = ctx
        o.maxChunk = chunk
        if let plan {
            o.specs = try SharingPlan.load(path: plan, model: model).layerSpecs(for: model.hyper)
        }
        return o
    }
}

extension BackendKind: ExpressibleByArgument {}

/// Writes a line to standard error.
func note(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// Reads a prompt given inline, as @file, or as `-` (standard input).
func readPromptText(_ text: String) throws -> String {
    if text == "-" { return readStandardInput() }
    guard text.hasPrefix("@") else { return text }
    return try readTextFile(String(text.dropFirst()), "prompt file")
}

/// A UTF-8 text file named by an option; missing, not a regular file (a FIFO would block) and not
/// UTF-8 are told apart.
func readTextFile(_ path: String, _ what: String) throws -> String {
    do { return try FileCheck.text(path, what) } catch let e as FileAccessError { throw ValidationError(e.description) }
}

/// Rejects a negative count given to `option`.
func requireNonNegative(_ value: Int, _ option: String) throws {
    guard value >= 0 else { throw ValidationError("\(option) must not be negative, got \(value)") }
}

/// Rejects a count below 1 given to `option`.
func requirePositive(_ value: Int, _ option: String) throws {
    guard value > 0 else { throw ValidationError("\(option) must be at least 1, got \(value)") }
}

/// Context for a prompt of `prompt` tokens and `tokens` more (+1 spare), or a clear error on overflow.
func contextLength(prompt: Int, tokens: Int, option: String) throws -> Int {
    try requireNonNegative(tokens, option)
    let (sum, overflow) = prompt.addingReportingOverflow(tokens)
    guard !overflow, sum < Int.max else { throw ValidationError("\(option) \(tokens) is too large") }
    return sum + 1
}

/// All of standard input as text (a prompt given as `-` or piped in), less the one newline that
/// `echo` and editors end it with.
func readStandardInput() -> String {
    let text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
    return text.hasSuffix("\n") ? String(text.dropLast()) : text
}

/// Whether standard input is piped or redirected rather than a terminal.
var standardInputIsPiped: Bool { isatty(STDIN_FILENO) == 0 }

/// A renamed option's value: the new spelling wins, the old (hidden) one still works.
func renamed<T>(_ value: T, old: T?) -> T { old ?? value }
