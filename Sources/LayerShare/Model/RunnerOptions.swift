/// The backend a model runs on.
public enum BackendKind: String, CaseIterable, Sendable {
    case vulkan
    case cpu
}

/// Options for putting a model on a backend (`RunnerFactory.make`).
public struct RunnerOptions {
    public var backend: BackendKind = .vulkan
    public var device: String? = nil
    /// Context length; nil = the model's, capped so the KV cache fits the device.
    public var context: Int? = nil
    /// How messages name `context` when a command derived it from other options (default "--ctx N").
    public var contextLabel: String? = nil
    public var maxChunk: Int = 128
    /// How each layer computes attention (from a sharing plan); nil = the unmodified model.
    public var specs: [LayerSpec]? = nil
    public var profiling = false
    public var validation: Bool? = nil
    /// The Vulkan backend's device choices; nil = the device's defaults (tests force other paths
    /// with it, e.g. `KernelTuning.defaults(for:as: .discreteGPU)`).
    public var kernelTuning: KernelTuning? = nil
    public init() {}
}
