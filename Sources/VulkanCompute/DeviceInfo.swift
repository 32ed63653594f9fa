import CVulkan

/// What a physical device offers, read from the driver (never assumed).
public struct DeviceInfo: Sendable {
    public enum Kind: String, Sendable { case discreteGPU = "discrete GPU", integratedGPU = "integrated GPU", virtualGPU = "virtual GPU", cpu = "CPU", other }

    public struct Heap: Sendable {
        public let size: Int
        public let deviceLocal: Bool
    }

    public let index: Int
    public let name: String
    public let kind: Kind
    public let apiVersion: UInt32
    public let driverVersion: UInt32
    public let heaps: [Heap]
    public let subgroupSize: Int
    /// Subgroup operations (VkSubgroupFeatureFlags) and shader stages (VkShaderStageFlags) with subgroup support.
    public let subgroupSupportedOperations: UInt32
    public let subgroupSupportedStages: UInt32
    /// Subgroup size control (VK_EXT_subgroup_size_control, core in Vulkan 1.3); false / the default
    /// subgroup size when the device lacks it. VulkanDevice enables the extension and its features.
    public let hasSubgroupSizeControl: Bool
    /// Pipelines may require full subgroups (`computeFullSubgroups`).
    public let supportsComputeFullSubgroups: Bool
    /// Compute pipelines may require a subgroup size in `minSubgroupSize ... maxSubgroupSize`.
    public let supportsRequiredSubgroupSize: Bool
    public let minSubgroupSize: Int
    public let maxSubgroupSize: Int
    public let maxSharedMemory: Int
    public let maxStorageBufferRange: Int
    public let maxMemoryAllocationSize: Int
    public let maxPushConstantsSize: Int
    public let maxWorkgroupInvocations: Int
    public let maxWorkgroupCount: (Int, Int, Int)
    public let minStorageBufferOffsetAlignment: Int
    /// Texel-buffer limits (uniform texel buffers, see TexelBufferView).
    public let maxTexelBufferElements: Int
    public let minTexelBufferOffsetAlignment: Int
    public let timestampsSupported: Bool
    public let timestampPeriodNs: Double
    public let timestampValidBits: Int
    public let hasPushDescriptors: Bool
    /// True when some memory type is both device-local and host-visible and the device is not discrete:
    /// buffers can be mapped directly, no staging copies. False when separate memory is forced.
    public private(set) var unifiedMemory: Bool
    /// The device has unified memory but is used as one with separate memory (`withSeparateMemory()`).
    public private(set) var separateMemoryForced = false

    public var apiVersionString: String {
        "\(apiVersion >> 22).\((apiVersion >> 12) & 0x3FF).\(apiVersion & 0xFFF)"
    }

    /// Higher is preferred when no device is named.
    var preference: Int {
        switch kind {
        case .discreteGPU: return 4
        case .integratedGPU: return 3
        case .virtualGPU: return 2
        case .cpu: return 1
        case .other: return 0
        }
    }

    init(index: Int, physical: VkPhysicalDevice) {
        self.index = index
        var subgroup = VkPhysicalDeviceSubgroupProperties()
        subgroup.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES
        var maint3 = VkPhysicalDeviceMaintenance3Properties()
        maint3.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES
        var props2 = VkPhysicalDeviceProperties2()
        props2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2
        withUnsafeMutablePointer(to: &subgroup) { sg in
            withUnsafeMutablePointer(to: &maint3) { m3 in
                sg.pointee.pNext = UnsafeMutableRawPointer(m3)
                props2.pNext = UnsafeMutableRawPointer(sg)
                vkGetPhysicalDeviceProperties2(physical, &props2)
            }
        }
        let p = props2.properties
        name = withUnsafeBytes(of: p.deviceName) { raw in
            String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
        }
        switch p.deviceType {
        case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: kind = .discreteGPU
        case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: kind = .integratedGPU
        case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: kind = .virtualGPU
        case VK_PHYSICAL_DEVICE_TYPE_CPU: kind = .cpu
        default: kind = .other
        }
        apiVersion = p.apiVersion
        driverVersion = p.driverVersion
        subgroupSize = Int(subgroup.subgroupSize)
        subgroupSupportedOperations = subgroup.supportedOperations
        subgroupSupportedStages = subgroup.supportedStages
        let limits = p.limits
        maxSharedMemory = Int(limits.maxComputeSharedMemorySize)
        maxStorageBufferRange = Int(limits.maxStorageBufferRange)
        maxMemoryAllocationSize = Int(maint3.maxMemoryAllocationSize)
        maxPushConstantsSize = Int(limits.maxPushConstantsSize)
        maxWorkgroupInvocations = Int(limits.maxComputeWorkGroupInvocations)
        maxWorkgroupCount = (Int(limits.maxComputeWorkGroupCount.0), Int(limits.maxComputeWorkGroupCount.1), Int(limits.maxComputeWorkGroupCount.2))
        minStorageBufferOffsetAlignment = Int(limits.minStorageBufferOffsetAlignment)
        maxTexelBufferElements = Int(limits.maxTexelBufferElements)
        minTexelBufferOffsetAlignment = Int(limits.minTexelBufferOffsetAlignment)
        timestampPeriodNs = Double(limits.timestampPeriod)

        var mem = VkPhysicalDeviceMemoryProperties()
        vkGetPhysicalDeviceMemoryProperties(physical, &mem)
        var heaps: [Heap] = []
        withUnsafeBytes(of: mem.memoryHeaps) { raw in
            let h = raw.bindMemory(to: VkMemoryHeap.self)
            for i in 0..<Int(mem.memoryHeapCount) {
                heaps.append(Heap(size: Int(h[i].size), deviceLocal: (h[i].flags & VkMemoryHeapFlags(VK_MEMORY_HEAP_DEVICE_LOCAL_BIT.rawValue)) != 0))
            }
        }
        self.heaps = heaps
        var unified = false
        withUnsafeBytes(of: mem.memoryTypes) { raw in
            let t = raw.bindMemory(to: VkMemoryType.self)
            let want = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT.rawValue | VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT.rawValue | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT.rawValue
            for i in 0..<Int(mem.memoryTypeCount) where t[i].propertyFlags & want == want { unified = true }
        }
        unifiedMemory = unified && kind != .discreteGPU

        var familyCount: UInt32 = 0
        vkGetPhysicalDeviceQueueFamilyProperties(physical, &familyCount, nil)
        var families = [VkQueueFamilyProperties](repeating: VkQueueFamilyProperties(), count: Int(familyCount))
        vkGetPhysicalDeviceQueueFamilyProperties(physical, &familyCount, &families)
        let computeFamily = families.firstIndex { $0.queueFlags & VkQueueFlags(VK_QUEUE_COMPUTE_BIT.rawValue) != 0 }
        let validBits = computeFamily.map { Int(families[$0].timestampValidBits) } ?? 0
        timestampValidBits = validBits
        timestampsSupported = validBits > 0 && (limits.timestampComputeAndGraphics != 0 || validBits > 0)

        var extCount: UInt32 = 0
        vkEnumerateDeviceExtensionProperties(physical, nil, &extCount, nil)
        var exts = [VkExtensionProperties](repeating: VkExtensionProperties(), count: Int(extCount))
        vkEnumerateDeviceExtensionProperties(physical, nil, &extCount, &exts)
        let extNames = Set(exts.map { e in
            withUnsafeBytes(of: e.extensionName) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        })
        hasPushDescriptors = extNames.contains("VK_KHR_push_descriptor")

        // Subgroup size control: the structs may only be chained when the extension is offered
        // (the instance targets Vulkan 1.2, so the 1.3 core version does not count).
        var sizeControl = (supported: false, full: false, required: false, min: subgroupSize, max: subgroupSize)
        if extNames.contains("VK_EXT_subgroup_size_control") {
            var sizeFeatures = VkPhysicalDeviceSubgroupSizeControlFeatures()
            sizeFeatures.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES
            var features2 = VkPhysicalDeviceFeatures2()
            features2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2
            var sizeProps = VkPhysicalDeviceSubgroupSizeControlProperties()
            sizeProps.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES
            var sizeProps2 = VkPhysicalDeviceProperties2()
            sizeProps2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2
            withUnsafeMutablePointer(to: &sizeFeatures) { f in
                features2.pNext = UnsafeMutableRawPointer(f)
                vkGetPhysicalDeviceFeatures2(physical, &features2)
            }
            withUnsafeMutablePointer(to: &sizeProps) { sp in
                sizeProps2.pNext = UnsafeMutableRawPointer(sp)
                vkGetPhysicalDeviceProperties2(physical, &sizeProps2)
            }
            let computeStage = VkShaderStageFlags(VK_SHADER_STAGE_COMPUTE_BIT.rawValue)
            sizeControl = (sizeFeatures.subgroupSizeControl != 0, sizeFeatures.computeFullSubgroups != 0,
                           sizeFeatures.subgroupSizeControl != 0 && sizeProps.requiredSubgroupSizeStages & computeStage != 0,
                           Int(sizeProps.minSubgroupSize), Int(sizeProps.maxSubgroupSize))
        }
        hasSubgroupSizeControl = sizeControl.supported
        supportsComputeFullSubgroups = sizeControl.full
        supportsRequiredSubgroupSize = sizeControl.required
        minSubgroupSize = sizeControl.min
        maxSubgroupSize = sizeControl.max
    }

    /// This device used as a discrete GPU's memory is: device buffers device-local and never mapped,
    /// every upload and download through staging buffers and copy commands. Lets a unified-memory
    /// device (lavapipe) run the discrete path; limits and kernel choices stay the device's own.
    public func withSeparateMemory() -> DeviceInfo {
        var info = self
        info.separateMemoryForced = unifiedMemory || separateMemoryForced
        info.unifiedMemory = false
        return info
    }

    /// Subgroup arithmetic (subgroupAdd, subgroupMax, ...) is available in compute shaders.
    public var supportsSubgroupArithmetic: Bool {
        subgroupSupportedStages & VkShaderStageFlags(VK_SHADER_STAGE_COMPUTE_BIT.rawValue) != 0
            && subgroupSupportedOperations & arithmeticOps == arithmeticOps
    }
    /// Subgroup ballot operations (subgroupBroadcast, ...) are available in compute shaders.
    public var supportsSubgroupBallot: Bool {
        let ops = VkSubgroupFeatureFlags(VK_SUBGROUP_FEATURE_BASIC_BIT.rawValue | VK_SUBGROUP_FEATURE_BALLOT_BIT.rawValue)
        return subgroupSupportedStages & VkShaderStageFlags(VK_SHADER_STAGE_COMPUTE_BIT.rawValue) != 0
            && subgroupSupportedOperations & ops == ops
    }
    private var arithmeticOps: VkSubgroupFeatureFlags {
        VkSubgroupFeatureFlags(VK_SUBGROUP_FEATURE_BASIC_BIT.rawValue | VK_SUBGROUP_FEATURE_ARITHMETIC_BIT.rawValue)
    }

    /// Names of the supported subgroup operations, e.g. ["basic", "vote", "arithmetic"].
    public var subgroupOperationNames: [String] {
        let names: [(VkSubgroupFeatureFlagBits, String)] = [
            (VK_SUBGROUP_FEATURE_BASIC_BIT, "basic"), (VK_SUBGROUP_FEATURE_VOTE_BIT, "vote"),
            (VK_SUBGROUP_FEATURE_ARITHMETIC_BIT, "arithmetic"), (VK_SUBGROUP_FEATURE_BALLOT_BIT, "ballot"),
            (VK_SUBGROUP_FEATURE_SHUFFLE_BIT, "shuffle"), (VK_SUBGROUP_FEATURE_SHUFFLE_RELATIVE_BIT, "shuffle_relative"),
            (VK_SUBGROUP_FEATURE_CLUSTERED_BIT, "clustered"), (VK_SUBGROUP_FEATURE_QUAD_BIT, "quad"),
        ]
        return names.filter { subgroupSupportedOperations & $0.0.rawValue != 0 }.map(\.1)
    }

    /// A multi-line description for `layershare devices`.
    public var summary: String {
        var lines = ["[\(index)] \(name)"]
        lines.append("    type: \(kind.rawValue), Vulkan \(apiVersionString)")
        for (i, h) in heaps.enumerated() {
            lines.append("    heap \(i): \(formatBytes(h.size))\(h.deviceLocal ? " device-local" : "")")
        }
        lines.append("    memory: \(unifiedMemory ? "unified (host-visible device memory, no staging)" : "separate (staging copies)")"
                     + (separateMemoryForced ? ", forced (the device has unified memory)" : ""))
        lines.append("    subgroup ops: \(subgroupOperationNames.joined(separator: " ")); size control: "
                     + (hasSubgroupSizeControl ? "\(minSubgroupSize)...\(maxSubgroupSize)\(supportsComputeFullSubgroups ? ", full subgroups" : "")" : "no"))
        lines.append("    subgroup size: \(subgroupSize), shared memory: \(formatBytes(maxSharedMemory)), max workgroup invocations: \(maxWorkgroupInvocations)")
        lines.append("    max storage buffer range: \(formatBytes(maxStorageBufferRange)), max allocation: \(formatBytes(maxMemoryAllocationSize))")
        lines.append("    timestamps: \(timestampsSupported ? "yes (\(timestampValidBits) valid bits, period \(timestampPeriodNs) ns)" : "no")")
        lines.append("    push descriptors: \(hasPushDescriptors ? "yes" : "no")")
        return lines.joined(separator: "\n")
    }
}
