import ModelFormats
import VulkanCompute

/// Builds transformers on a backend and reports what it decided (e.g. a capped context).
public enum RunnerFactory {
    public static func make(model: LoadedModel, options: RunnerOptions, device: VulkanDevice? = nil,
                            log: (String) -> Void = { _ in }) throws -> ModelRunner {
        let h = model.hyper
        let specs = options.specs ?? LayerSpec.standard(layers: h.layers, kvHeads: h.kvHeads)
        let kvPerPosition = max(1, specs.reduce(0) { $0 + $1.cache(for: h).bytesPerToken })
        switch options.backend {
        case .cpu:
            let context = try resolveContext(options.context, model: h, budget: nil, kvPerPosition: kvPerPosition, log: log)
            return try Transformer(backend: CPUBackend(), weights: model.weights, capacity: context,
                                   maxChunk: options.maxChunk, specs: options.specs)
        case .vulkan:
            let device = try device ?? VulkanDevice(selector: options.device, validation: options.validation)
            let heap = device.info.heaps.filter(\.deviceLocal).map(\.size).max() ?? device.info.heaps.map(\.size).max() ?? 0
            let weightBytes = model.weights.tensorNames.compactMap { try? model.weights.weight($0).data.count }.reduce(0, +)
            // Leave room for weights, activations (LM head logits dominate) and a safety margin.
            let activations = options.maxChunk * (h.vocabSize + 4 * h.ffnSize + 8 * h.hiddenSize) * 4
            let budget = heap - weightBytes - activations - (64 << 20)
            let context = try resolveContext(options.context, model: h, budget: budget, kvPerPosition: kvPerPosition, log: log)
            let backend = try VulkanBackend(device: device, profiling: options.profiling, tuning: options.kernelTuning)
            return try Transformer(backend: backend, weights: model.weights, capacity: context,
                                   maxChunk: options.maxChunk, specs: options.specs)
        }
    }

    /// A Vulkan runner together with its backend (for profiling and memory figures).
    public static func makeVulkan(model: LoadedModel, options: RunnerOptions, device: VulkanDevice? = nil,
                                  log: (String) -> Void = { _ in }) throws -> (runner: ModelRunner, backend: VulkanBackend) {
        var o = options
        o.backend = .vulkan
        let runner = try make(model: model, options: o, device: device, log: log)
        guard let t = runner as? Transformer<VulkanBackend> else { throw ModelLoadError("internal: expected a Vulkan transformer") }
        return (runner, t.backend)
    }

    static func resolveContext(_ asked: Int?, model h: LlamaHyperParameters, budget: Int?, kvPerPosition: Int,
                               log: (String) -> Void) throws -> Int {
        if let asked {
            guard asked > 0 else { throw ModelLoadError("--ctx must be positive, got \(asked)") }
            if asked > h.contextLength {
                log("note: --ctx \(asked) exceeds the model's trained context \(h.contextLength); quality may degrade past it")
            }
            let (bytes, overflow) = asked.multipliedReportingOverflow(by: kvPerPosition)
            if overflow {
                throw ModelLoadError("--ctx \(asked) is too large: its KV cache would exceed \(Int.max) bytes")
            }
            if let budget, bytes > budget {
                throw ModelLoadError("--ctx \(asked) needs \(formatBytes(bytes)) of KV cache; the device has room for about \(max(0, budget / kvPerPosition)) positions")
            }
            return asked
        }
        var context = h.contextLength
        if let budget, context * kvPerPosition > budget {
            context = max(16, budget / kvPerPosition)
            log("note: context capped at \(context) tokens (of the model's \(h.contextLength)) so the KV cache fits the device")
        }
        return context
    }
}
