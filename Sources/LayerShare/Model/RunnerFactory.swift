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
            let plan = cpuPlan(model: model, specs: specs, tensors: tensors)
            let (context, chunk) = try plan.resolve(context: options.context, label: options.contextLabel, chunk: options.maxChunk, modelContext: h.contextLength, log: log)
            return try Transformer(backend: CPUBackend(), weights: model.weights, capacity: context,
                                   maxChunk: chunk, specs: options.specs)
        case .vulkan:
            let device = try device ?? VulkanDevice(selector: options.device, validation: options.validation)
            let plan = vulkanPlan(model: model, specs: specs, tensors: tensors, device: device.info)
            let (context, chunk) = try plan.resolve(context: options.context, label: options.contextLabel, chunk: options.maxChunk, modelContext: h.contextLength, log: log)
            let backend = try VulkanBackend(device: device, profiling: options.profiling, tuning: options.kernelTuning)
            return try Transformer(backend: backend, weights: model.weights, capacity: context,
                                   maxChunk: chunk, specs: options.specs)
        }
    }

    /// The memory a runner with `options` would take on `options.backend`, without building it
    /// (`layershare info`); throws what `make` would throw when it does not fit.
    public static func memoryNeed(model: LoadedModel, options: RunnerOptions, device: DeviceInfo? = nil) throws -> MemoryNeed {
        let h = model.hyper
        let specs = options.specs ?? LayerSpec.standard(layers: h.layers, kvHeads: h.kvHeads)
        let tensors = try model.weights.tensorNames.map { try model.weights.weight($0) }
        let plan: MemoryPlan
        switch options.backend {
        case .cpu: plan = cpuPlan(model: model, specs: specs, tensors: tensors)
        case .vulkan:
            let info = try device ?? VulkanInstance(validation: false).selectDevice(options.device)
            plan = vulkanPlan(model: model, specs: specs, tensors: tensors, device: info)
        }
        let (context, chunk) = try plan.resolve(context: options.context, label: options.contextLabel, chunk: options.maxChunk,
                                                modelContext: h.contextLength, log: { _ in })
        return MemoryNeed(context: context, weights: plan.weights, kvCache: context * plan.perPosition,
                          activations: chunk * plan.perChunkRow + plan.logProbabilityBytes, available: plan.available, place: plan.place)
    }

    /// The CPU reference holds every weight as float32.
    private static func cpuPlan(model: LoadedModel, specs: [LayerSpec], tensors: [WeightTensor]) -> MemoryPlan {
        MemoryPlan(model: model.hyper, specs: specs, weights: tensors.reduce(0) { $0 + $1.elementCount * 4 },
                   available: HostMemory.available(), place: "this machine")
    }

    /// Vulkan keeps the weights in their stored types in the largest device-local heap.
    private static func vulkanPlan(model: LoadedModel, specs: [LayerSpec], tensors: [WeightTensor], device: DeviceInfo) -> MemoryPlan {
        let heap = device.heaps.filter(\.deviceLocal).map(\.size).max() ?? device.heaps.map(\.size).max() ?? 0
        let weights = tensors.reduce(0) { $0 + $1.data.count }
        var plan = MemoryPlan(model: model.hyper, specs: specs, weights: weights, available: heap,
                              place: "the device (\(device.name), \(formatBytes(heap)))")
        plan.maxBuffer = min(device.maxStorageBufferRange, device.maxMemoryAllocationSize > 0 ? device.maxMemoryAllocationSize : Int.max)
        return plan
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

/// What a runner would take: bytes of weights, KV cache and activations for its context.
public struct MemoryNeed: Sendable {
    public let context: Int
    public let weights: Int
    public let kvCache: Int
    public let activations: Int
    /// Bytes the backend can hold, and where (for messages).
    public let available: Int
    public let place: String
    public var total: Int { weights + kvCache + activations }
}
