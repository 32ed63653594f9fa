import ModelFormats

extension VulkanBackend {
    public func loadComposed(_ weights: [ComposedWeight]) throws -> [VulkanMatrix] {
        try weights.map { try loadWeight($0.materialised()) }
    }
}
