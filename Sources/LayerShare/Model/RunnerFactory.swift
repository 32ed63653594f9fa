import ModelFormats
import VulkanCompute

/// Builds transformers on a backend and reports what it decided (e.g. a capped context).
public enum RunnerFactory {
    public static func make(model: LoadedModel, options: RunnerOptions, device: VulkanDevice? = nil,
                            log: (String) -> Void = { _ in }) throws -> ModelRunner {
        let h = model.hyper
        let specs = options.specs ?? LayerSpec.standard(layers: h.layers, kvHeads: h.kvHeads)
        let tensors = try model.weights.tensorNames.map { try model.weights.weight($0) }
        switch options.backend {
        case .cpu:
            // The reference holds every weight as float32.
            let plan = MemoryPlan(model: h, specs: specs, weights: tensors.reduce(0) { $0 + $1.elementCount * 4 },
                                  available: HostMemory.available(), place: "this machine")
            let (context, chunk) = try plan.resolve(context: options.context, label: options.contextLabel, chunk: options.maxChunk, modelContext: h.contextLength, log: log)
            return try Transformer(backend: CPUBackend(), weights: model.weights, capacity: context,
                                   maxChunk: chunk, specs: options.specs)
        case .vulkan:
            let device = try device ?? VulkanDevice(selector: options.device, validation: options.validation)
            let heap = device.info.heaps.filter(\.deviceLocal).map(\.size).max() ?? device.info.heaps.map(\.size).max() ?? 0
            var plan = MemoryPlan(model: h, specs: specs, weights: tensors.reduce(0) { $0 + $1.data.count }, available: heap,
                                  place: "the device (\(device.info.name), \(formatBytes(heap)))")
            plan.maxBuffer = min(device.info.maxStorageBufferRange,
                                 device.info.maxMemoryAllocationSize > 0 ? device.info.maxMemoryAllocationSize : Int.max)
            let (context, chunk) = try plan.resolve(context: options.context, label: options.contextLabel, chunk: options.maxChunk, modelContext: h.contextLength, log: log)
            let backend = try VulkanBackend(device: device, profiling: options.profiling, tuning: options.kernelTuning)
            return try Transformer(backend: backend, weights: model.weights, capacity: context,
                                   maxChunk: chunk, specs: options.specs)
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
}
