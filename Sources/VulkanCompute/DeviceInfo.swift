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
    public let maxSharedMemory: Int
    public let maxStorageBufferRange: Int
    public let maxMemoryAllocationSize: Int
    public let maxPushConstantsSize: Int
    public let maxWorkgroupInvocations: Int
    public let maxWorkgroupCount: (Int, Int, Int)
    public let minStorageBufferOffsetAlignment: Int
    public let timestampsSupported: Bool
    public let timestampPeriodNs: Double
    public let timestampValidBits: Int
    public let hasPushDescriptors: Bool
    /// True when some memory type is both device-local and host-visible and the device is not discrete:
    /// buffers can be mapped directly, no staging copies.
    public let unifiedMemory: Bool

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
        let limits = p.limits
        maxSharedMemory = Int(limits.maxComputeSharedMemorySize)
        maxStorageBufferRange = Int(limits.maxStorageBufferRange)
        maxMemoryAllocationSize = Int(maint3.maxMemoryAllocationSize)
        maxPushConstantsSize = Int(limits.maxPushConstantsSize)
        maxWorkgroupInvocations = Int(limits.maxComputeWorkGroupInvocations)
        maxWorkgroupCount = (Int(limits.maxComputeWorkGroupCount.0), Int(limits.maxComputeWorkGroupCount.1), Int(limits.maxComputeWorkGroupCount.2))
        minStorageBufferOffsetAlignment = Int(limits.minStorageBufferOffsetAlignment)
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
        hasPushDescriptors = exts.contains { e in
            withUnsafeBytes(of: e.extensionName) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) } == "VK_KHR_push_descriptor"
        }
    }

    /// A multi-line description for `layershare devices`.
    public var summary: String {
        var lines = ["[\(index)] \(name)"]
        lines.append("    type: \(kind.rawValue), Vulkan \(apiVersionString)")
        for (i, h) in heaps.enumerated() {
            lines.append("    heap \(i): \(formatBytes(h.size))\(h.deviceLocal ? " device-local" : "")")
        }
        lines.append("    memory: \(unifiedMemory ? "unified (host-visible device memory, no staging)" : "separate (staging copies)")")
        lines.append("    subgroup size: \(subgroupSize), shared memory: \(formatBytes(maxSharedMemory)), max workgroup invocations: \(maxWorkgroupInvocations)")
        lines.append("    max storage buffer range: \(formatBytes(maxStorageBufferRange)), max allocation: \(formatBytes(maxMemoryAllocationSize))")
        lines.append("    timestamps: \(timestampsSupported ? "yes (\(timestampValidBits) valid bits, period \(timestampPeriodNs) ns)" : "no")")
        lines.append("    push descriptors: \(hasPushDescriptors ? "yes" : "no")")
        return lines.joined(separator: "\n")
    }
}
