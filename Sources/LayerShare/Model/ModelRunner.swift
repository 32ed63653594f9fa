import ModelFormats

/// A loaded transformer on some backend, without its generic parameter (for the CLI and tools).
public protocol ModelRunner: AnyObject {
    var hyper: LlamaHyperParameters { get }
    var position: Int { get }
    var capacity: Int { get }
    var maxChunk: Int { get }
    var specs: [LayerSpec] { get }
    var kvCacheBytes: Int { get }
    /// Bytes the weights take on the backend.
    var weightBytes: Int { get }
    /// Bytes allocated on the device now and at most so far (Vulkan; nil on the CPU).
    var deviceMemory: (current: Int, peak: Int)? { get }
    var backendName: String { get }
    func reset()
    func rewind(to position: Int) throws
    @discardableResult
    func forward(_ tokens: [Int], logits: LogitsRequest, hidden: ((Int, [Float]) -> Void)?,
                 logitsSink: ((Int, [Float]) -> Void)?) throws -> [Float]
}

extension ModelRunner {
    @discardableResult
    public func forward(_ tokens: [Int], logits: LogitsRequest = .last) throws -> [Float] {
        try forward(tokens, logits: logits, hidden: nil, logitsSink: nil)
    }
}

extension Transformer: ModelRunner {
    public var backendName: String { backend.name }
    public var weightBytes: Int { backend.weightBytes }
    public var deviceMemory: (current: Int, peak: Int)? {
        (backend as? VulkanBackend).map { ($0.device.allocatedBytes, $0.device.peakAllocatedBytes) }
    }
}
