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

/// How a pipeline's invocations must be packed into subgroups (VK_EXT_subgroup_size_control).
/// The default, `.any`, leaves it to the driver as before.
public struct SubgroupRequirement: Hashable, Sendable {
    /// Every subgroup is full (REQUIRE_FULL_SUBGROUPS): needs `DeviceInfo.supportsComputeFullSubgroups`
    /// and a local size X that is a multiple of `requiredSize` (or of `maxSubgroupSize` without one).
    public var fullSubgroups: Bool
    /// The subgroup size the pipeline runs with: needs `DeviceInfo.supportsRequiredSubgroupSize` and
    /// `minSubgroupSize ... maxSubgroupSize`.
    public var requiredSize: Int?

    public init(fullSubgroups: Bool = false, requiredSize: Int? = nil) {
        self.fullSubgroups = fullSubgroups
        self.requiredSize = requiredSize
    }

    public static let any = SubgroupRequirement()

    /// For kernels that assume full subgroups of `device.subgroupSize` lanes: requests both where
    /// the device can guarantee them; elsewhere (no subgroup size control) this is `.any`, and a
    /// SPIR-V ≤ 1.5 shader sees SubgroupSize == `subgroupSize` anyway.
    public static func fullDeviceSubgroups(_ info: DeviceInfo) -> SubgroupRequirement {
        let size = info.subgroupSize
        let required = info.supportsRequiredSubgroupSize && (info.minSubgroupSize...info.maxSubgroupSize).contains(size)
        return SubgroupRequirement(fullSubgroups: info.supportsComputeFullSubgroups, requiredSize: required ? size : nil)
    }

}

/// A compute pipeline whose buffers are bound by push descriptors (set 0, bindings 0..<n; storage
/// buffers unless `bindings` says otherwise), with an optional push-constant block and
/// specialization constants (ids 0..<k).
public final class ComputePipeline {
    public let device: VulkanDevice
    public let label: String
    /// Descriptor kind of each binding 0..<bindingCount.
    public let bindings: [DescriptorKind]
    public var bindingCount: Int { bindings.count }
    public let pushConstantBytes: Int
    let handle: VkPipeline
    let layout: VkPipelineLayout
    let setLayout: VkDescriptorSetLayout
    let module: VkShaderModule

    /// All `bindingCount` bindings are storage buffers.
    public convenience init(device: VulkanDevice, spirv: [UInt32], label: String, bindingCount: Int,
                            pushConstantBytes: Int, specialization: [ShaderScalar] = [],
                            subgroups: SubgroupRequirement = .any) throws {
        try self.init(device: device, spirv: spirv, label: label,
                      bindings: Array(repeating: .storageBuffer, count: bindingCount),
                      pushConstantBytes: pushConstantBytes, specialization: specialization, subgroups: subgroups)
    }

    public init(device: VulkanDevice, spirv: [UInt32], label: String, bindings kinds: [DescriptorKind],
                pushConstantBytes: Int, specialization: [ShaderScalar] = [],
                subgroups: SubgroupRequirement = .any) throws {
        guard pushConstantBytes <= device.info.maxPushConstantsSize else {
            throw VulkanError.invalidArgument("pipeline \(label): \(pushConstantBytes) bytes of push constants exceed the device limit \(device.info.maxPushConstantsSize)")
        }
        let info = device.info
        if subgroups.fullSubgroups, !info.supportsComputeFullSubgroups {
            throw VulkanError.missingFeature("pipeline \(label): \(info.name) cannot guarantee full subgroups (computeFullSubgroups)")
        }
        if let size = subgroups.requiredSize,
           !info.supportsRequiredSubgroupSize || !(info.minSubgroupSize...info.maxSubgroupSize).contains(size) {
            throw VulkanError.missingFeature("pipeline \(label): \(info.name) cannot run compute shaders with subgroup size \(size)")
        }
        self.device = device
        self.label = label
        self.bindings = kinds
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

        var bindings = kinds.enumerated().map { i, kind -> VkDescriptorSetLayoutBinding in
            var b = VkDescriptorSetLayoutBinding()
            b.binding = UInt32(i)
            b.descriptorType = kind.vkType
            b.descriptorCount = 1
            b.stageFlags = VkShaderStageFlags(VK_SHADER_STAGE_COMPUTE_BIT.rawValue)
            return b
        }
        var setInfo = VkDescriptorSetLayoutCreateInfo()
        setInfo.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO
        setInfo.flags = VkDescriptorSetLayoutCreateFlags(VK_DESCRIPTOR_SET_LAYOUT_CREATE_PUSH_DESCRIPTOR_BIT_KHR.rawValue)
        setInfo.bindingCount = UInt32(kinds.count)
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
                var sizeInfo = VkPipelineShaderStageRequiredSubgroupSizeCreateInfo()
                sizeInfo.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_REQUIRED_SUBGROUP_SIZE_CREATE_INFO
                sizeInfo.requiredSubgroupSize = UInt32(subgroups.requiredSize ?? 0)
                return withUnsafePointer(to: &spec) { sp in withUnsafePointer(to: &sizeInfo) { sizePtr in
                    "main".withCString { entry in
                        var stage = VkPipelineShaderStageCreateInfo()
                        stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO
                        stage.stage = VK_SHADER_STAGE_COMPUTE_BIT
                        if subgroups.fullSubgroups {
                            stage.flags = VkPipelineShaderStageCreateFlags(VK_PIPELINE_SHADER_STAGE_CREATE_REQUIRE_FULL_SUBGROUPS_BIT.rawValue)
                        }
                        if subgroups.requiredSize != nil { stage.pNext = UnsafeRawPointer(sizePtr) }
                        stage.module = module
                        stage.pName = entry
                        stage.pSpecializationInfo = specialization.isEmpty ? nil : sp
                        var info = VkComputePipelineCreateInfo()
                        info.sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO
                        info.stage = stage
                        info.layout = layout
                        return vkCreateComputePipelines(dev, nil, 1, &info, nil, &pipeline)
                    }
                } }
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
    private var pipelines: [Key: ComputePipeline] = [:]
    private let lock = NSLock()

    /// Looked up on every dispatch: hashed fields, no string building.
    private struct Key: Hashable {
        let file: String
        let defines: [String: String]
        let specialization: [UInt32]
        let bindingKinds: [DescriptorKind]
        let pushConstantBytes: Int
        let subgroups: SubgroupRequirement
    }

    public init(device: VulkanDevice, compiler: ShaderCompiler) {
        self.device = device
        self.compiler = compiler
    }

    public var count: Int { lock.lock(); defer { lock.unlock() }; return pipelines.count }

    public func pipeline(_ file: String, defines: [String: String] = [:], specialization: [ShaderScalar] = [],
                         bindings: Int, pushConstantBytes: Int, subgroups: SubgroupRequirement = .any) throws -> ComputePipeline {
        try pipeline(file, defines: defines, specialization: specialization,
                     bindingKinds: Array(repeating: .storageBuffer, count: bindings), pushConstantBytes: pushConstantBytes,
                     subgroups: subgroups)
    }

    public func pipeline(_ file: String, defines: [String: String] = [:], specialization: [ShaderScalar] = [],
                         bindingKinds: [DescriptorKind], pushConstantBytes: Int,
                         subgroups: SubgroupRequirement = .any) throws -> ComputePipeline {
        let key = Key(file: file, defines: defines, specialization: specialization.map(\.bits), bindingKinds: bindingKinds,
                      pushConstantBytes: pushConstantBytes, subgroups: subgroups)
        lock.lock(); defer { lock.unlock() }
        if let p = pipelines[key] { return p }
        let name = ([file] + defines.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }).joined(separator: " ")
        let p = try ComputePipeline(device: device, spirv: compiler.spirv(file, defines: defines), label: name,
                                    bindings: bindingKinds, pushConstantBytes: pushConstantBytes, specialization: specialization,
                                    subgroups: subgroups)
        pipelines[key] = p
        return p
    }
}

extension DescriptorKind {
    var vkType: VkDescriptorType {
        switch self {
        case .storageBuffer: return VK_DESCRIPTOR_TYPE_STORAGE_BUFFER
        case .uniformTexelBuffer: return VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER
        }
    }
}
