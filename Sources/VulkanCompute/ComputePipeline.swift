import CVulkan
import Foundation

/// A scalar handed to a shader as a push constant or specialization constant (32 bits each).
public enum ShaderScalar: Hashable, Sendable {
    case int(Int32)
    case uint(UInt32)
    case float(Float)

    public var bits: UInt32 {
        switch self {
        case let .int(v): return UInt32(bitPattern: v)
        case let .uint(v): return v
        case let .float(v): return v.bitPattern
        }
    }
}

/// A compute pipeline whose storage buffers are bound by push descriptors (set 0, bindings 0..<n),
/// with an optional push-constant block and specialization constants (ids 0..<k).
public final class ComputePipeline {
    public let device: VulkanDevice
    public let label: String
    public let bindingCount: Int
    public let pushConstantBytes: Int
    let handle: VkPipeline
    let layout: VkPipelineLayout
    let setLayout: VkDescriptorSetLayout
    let module: VkShaderModule

    public init(device: VulkanDevice, spirv: [UInt32], label: String, bindingCount: Int,
                pushConstantBytes: Int, specialization: [ShaderScalar] = []) throws {
        guard pushConstantBytes <= device.info.maxPushConstantsSize else {
            throw VulkanError.invalidArgument("pipeline \(label): \(pushConstantBytes) bytes of push constants exceed the device limit \(device.info.maxPushConstantsSize)")
        }
        self.device = device
        self.label = label
        self.bindingCount = bindingCount
        self.pushConstantBytes = pushConstantBytes
        let dev = device.handle

        var moduleInfo = VkShaderModuleCreateInfo()
        moduleInfo.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO
        moduleInfo.codeSize = spirv.count * 4
        var module: VkShaderModule?
        try spirv.withUnsafeBufferPointer { words in
            moduleInfo.pCode = words.baseAddress
            try check(vkCreateShaderModule(dev, &moduleInfo, nil, &module), "vkCreateShaderModule(\(label))")
        }

        var bindings = (0..<bindingCount).map { i -> VkDescriptorSetLayoutBinding in
            var b = VkDescriptorSetLayoutBinding()
            b.binding = UInt32(i)
            b.descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER
            b.descriptorCount = 1
            b.stageFlags = VkShaderStageFlags(VK_SHADER_STAGE_COMPUTE_BIT.rawValue)
            return b
        }
        var setInfo = VkDescriptorSetLayoutCreateInfo()
        setInfo.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO
        setInfo.flags = VkDescriptorSetLayoutCreateFlags(VK_DESCRIPTOR_SET_LAYOUT_CREATE_PUSH_DESCRIPTOR_BIT_KHR.rawValue)
        setInfo.bindingCount = UInt32(bindingCount)
        var setLayout: VkDescriptorSetLayout?
        try bindings.withUnsafeMutableBufferPointer { p in
            setInfo.pBindings = UnsafePointer(p.baseAddress)
            try check(vkCreateDescriptorSetLayout(dev, &setInfo, nil, &setLayout), "vkCreateDescriptorSetLayout(\(label))")
        }

        var range = VkPushConstantRange(stageFlags: VkShaderStageFlags(VK_SHADER_STAGE_COMPUTE_BIT.rawValue), offset: 0, size: UInt32(pushConstantBytes))
        var layoutInfo = VkPipelineLayoutCreateInfo()
        layoutInfo.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO
        layoutInfo.setLayoutCount = 1
        var layout: VkPipelineLayout?
        try withUnsafePointer(to: &setLayout) { sl in
            layoutInfo.pSetLayouts = sl
            try withUnsafePointer(to: &range) { r in
                layoutInfo.pushConstantRangeCount = pushConstantBytes > 0 ? 1 : 0
                layoutInfo.pPushConstantRanges = pushConstantBytes > 0 ? r : nil
                try check(vkCreatePipelineLayout(dev, &layoutInfo, nil, &layout), "vkCreatePipelineLayout(\(label))")
            }
        }

        var specData = specialization.map(\.bits)
        var entries = (0..<specialization.count).map {
            VkSpecializationMapEntry(constantID: UInt32($0), offset: UInt32($0 * 4), size: 4)
        }
        var pipeline: VkPipeline?
        let result: VkResult = specData.withUnsafeMutableBytes { data in
            entries.withUnsafeMutableBufferPointer { e in
                var spec = VkSpecializationInfo(mapEntryCount: UInt32(specialization.count), pMapEntries: e.baseAddress,
                                                dataSize: data.count, pData: data.baseAddress)
                return withUnsafePointer(to: &spec) { sp in
                    "main".withCString { entry in
                        var stage = VkPipelineShaderStageCreateInfo()
                        stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO
                        stage.stage = VK_SHADER_STAGE_COMPUTE_BIT
                        stage.module = module
                        stage.pName = entry
                        stage.pSpecializationInfo = specialization.isEmpty ? nil : sp
                        var info = VkComputePipelineCreateInfo()
                        info.sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO
                        info.stage = stage
                        info.layout = layout
                        return vkCreateComputePipelines(dev, nil, 1, &info, nil, &pipeline)
                    }
                }
            }
        }
        try check(result, "vkCreateComputePipelines(\(label))")
        handle = pipeline!
        self.layout = layout!
        self.setLayout = setLayout!
        self.module = module!
    }

    deinit {
        vkDestroyPipeline(device.handle, handle, nil)
        vkDestroyPipelineLayout(device.handle, layout, nil)
        vkDestroyDescriptorSetLayout(device.handle, setLayout, nil)
        vkDestroyShaderModule(device.handle, module, nil)
    }
}

/// Compiles and keeps pipelines, one per distinct (file, defines, specialization) so each is
/// JIT-compiled by the driver only once.
public final class PipelineLibrary {
    public let device: VulkanDevice
    public let compiler: ShaderCompiler
    private var pipelines: [String: ComputePipeline] = [:]
    private let lock = NSLock()

    public init(device: VulkanDevice, compiler: ShaderCompiler) {
        self.device = device
        self.compiler = compiler
    }

    public var count: Int { lock.lock(); defer { lock.unlock() }; return pipelines.count }

    public func pipeline(_ file: String, defines: [String: String] = [:], specialization: [ShaderScalar] = [],
                         bindings: Int, pushConstantBytes: Int) throws -> ComputePipeline {
        let key = "\(file)|\(defines.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","))|\(specialization.map { String($0.bits) }.joined(separator: ","))"
        lock.lock(); defer { lock.unlock() }
        if let p = pipelines[key] { return p }
        let name = ([file] + defines.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }).joined(separator: " ")
        let p = try ComputePipeline(device: device, spirv: compiler.spirv(file, defines: defines), label: name,
                                    bindingCount: bindings, pushConstantBytes: pushConstantBytes, specialization: specialization)
        pipelines[key] = p
        return p
    }
}
