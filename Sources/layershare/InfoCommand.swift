import ArgumentParser
import Foundation
import LayerShare

struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Describe a model: sizes, tensor types, tokenizer, chat template and the memory it needs.",
        discussion: """
        Reads the model's header and tokenizer only; nothing runs. The memory lines give, for each backend, the context it would get with no --ctx (the model's, capped to fit) and the bytes of weights (float32 on the CPU, stored types on Vulkan), KV cache and prefill activations. A backend it cannot use (no Vulkan device) says why instead.
        """
    )

    @Option(name: [.customShort("m"), .long], help: "Model: a .gguf file or a Hugging Face directory. Default: the bootstrap model.")
    var model: String?

    @Option(name: [.customShort("c"), .customLong("ctx-size"), .customLong("ctx")], parsing: .unconditional,
            help: "Context to size the memory for (default: the model's, capped to fit).")
    var ctx: Int?

    @Option(help: "Vulkan device to size the memory for (default: LAYERSHARE_DEVICE, else the most capable device).")
    var device: String?

    func run() throws {
        let model = try loadModel(model)
        let h = model.hyper
        print("model: \(model.path)")
        print("architecture: \(h.architecture)")
        print("layers: \(h.layers), hidden: \(h.hiddenSize), feed-forward: \(h.ffnSize)")
        print("heads: \(h.heads), KV heads: \(h.kvHeads), head dim: \(h.headDim)")
        print("vocabulary: \(h.vocabSize) rows, tokenizer \(model.tokenizer.vocabSize) tokens")
        print("context: \(h.contextLength) (trained), rope theta \(h.ropeTheta), rms eps \(h.rmsEps), tied embeddings: \(h.tiedEmbeddings)")
        if let line = ropeScalingLine(h.ropeScaling) { print(line) }
        if h.options.qkvBias { print("Q/K/V biases: yes (added before RoPE)") }
        try tensorTypeLines(model).forEach { print($0) }
        print(tokenizerLine(model.tokenizer))
        let template = model.chatTemplate
        print("chat template: \(template.family.rawValue)\(template.notice == nil ? "" : " (fallback: \(template.notice!))"), default system prompt: "
              + (template.defaultSystemPrompt.map { "\"\($0)\"" } ?? "none"))
        for backend in [BackendKind.cpu, .vulkan] { print(memoryLine(model, backend)) }
    }

    /// RoPE scaling, nil for plain RoPE: the linear factor and the range of the per-pair factors.
    private func ropeScalingLine(_ s: RopeScaling) -> String? {
        guard !s.isNone else { return nil }
        var parts: [String] = []
        if s.linearFactor != 1 { parts.append("linear, factor \(s.linearFactor)") }
        if let f = s.frequencyFactors, let low = f.min(), let high = f.max() {
            parts.append("\(f.count) per-pair frequency factors \(low)…\(high) (rope_freqs)")
        }
        return "rope scaling: " + parts.joined(separator: "; ")
    }

    /// One line per stored type: how many tensors and their bytes.
    private func tensorTypeLines(_ model: LoadedModel) throws -> [String] {
        var byType: [String: (count: Int, bytes: Int)] = [:]
        for name in model.weights.tensorNames {
            let t = try model.weights.weight(name)
            let entry = byType["\(t.type)", default: (0, 0)]
            byType["\(t.type)"] = (entry.count + 1, entry.bytes + t.data.count)
        }
        return ["tensors: \(model.weights.tensorNames.count)"] + byType.sorted { $0.value.bytes > $1.value.bytes }.map {
            "  \($0.key): \($0.value.count) tensors, \(formatBytes($0.value.bytes))"
        }
    }

    private func tokenizerLine(_ t: Tokenizer) -> String {
        func id(_ v: Int?) -> String { v.map(String.init) ?? "none" }
        let kind = t.model == .sentencePiece ? "SentencePiece" : "byte-level BPE (\(t.preTokenizer.rawValue) pre-tokenizer)"
        return "tokenizer: \(kind); BOS \(id(t.bosId)) (added: \(t.addBosToken)), "
            + "EOS \(id(t.eosId)), PAD \(id(t.padId)), <|im_start|> \(id(t.imStartId)), <|im_end|> \(id(t.imEndId))"
    }

    private func memoryLine(_ model: LoadedModel, _ backend: BackendKind) -> String {
        var options = RunnerOptions()
        options.backend = backend
        options.context = ctx
        options.device = device
        do {
            let m = try RunnerFactory.memoryNeed(model: model, options: options)
            return "memory on \(backend.rawValue) at context \(m.context): \(formatBytes(m.total)) (weights \(formatBytes(m.weights)), "
                + "KV cache \(formatBytes(m.kvCache)), activations \(formatBytes(m.activations))) of \(formatBytes(m.available)) in \(m.place)"
        } catch {
            return "memory on \(backend.rawValue): \(error)"
        }
    }
}
