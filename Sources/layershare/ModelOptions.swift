import ArgumentParser
import Foundation
import LayerShare

/// Options shared by every command that runs a model.
struct ModelOptions: ParsableArguments {
    @Option(help: "Model: a .gguf file or a Hugging Face directory (config.json + *.safetensors). Default: the bootstrap model.")
    var model: String?

    @Option(help: "Backend: vulkan or cpu (OpenBLAS reference).")
    var backend: BackendKind = .vulkan

    @Option(help: "Vulkan device index or name fragment (default: LAYERSHARE_DEVICE, else the most capable device).")
    var device: String?

    @Option(help: "Context length in tokens (default: the model's, capped so the KV cache fits the device).")
    var ctx: Int?

    @Option(help: "Rows per prefill chunk.")
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
        }
        return model
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

/// Reads a prompt given inline or as @file.
func readPromptText(_ text: String) throws -> String {
    if text.hasPrefix("@") {
        let path = String(text.dropFirst())
        guard let s = try? String(contentsOfFile: path, encoding: .utf8) else { throw ValidationError("cannot read prompt file \(path)") }
        return s
    }
    return text
}
