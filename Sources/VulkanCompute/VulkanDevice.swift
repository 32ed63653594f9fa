import CVulkan
import Foundation

/// A logical device with one compute queue. Owns the command pool used for one-shot transfers.
/// Every object created from it keeps it alive, so it is destroyed last.
public final class VulkanDevice {
    public let instance: VulkanInstance
    public let info: DeviceInfo
    public let physical: VkPhysicalDevice
    public let handle: VkDevice
    public let queue: VkQueue
    public let queueFamily: UInt32
    let commandPool: VkCommandPool
    let pushDescriptor: PFN_vkCmdPushDescriptorSetKHR
    let memoryProperties: VkPhysicalDeviceMemoryProperties
    private let allocationLock = NSLock()
    private var heapUsage: HeapUsage
    /// Bytes currently allocated through this device (all heaps), and the high-water mark.
    public private(set) var allocatedBytes = 0
    public private(set) var peakAllocatedBytes = 0

    /// Bytes copied through staging buffers (DeviceBuffer.upload / download on unmapped buffers).
    public struct StagedBytes: Sendable { public var uploaded = 0, downloaded = 0 }
    public private(set) var staged = StagedBytes()

    /// `forceDiscrete: nil` reads `LAYERSHARE_FORCE_DISCRETE` (1 = on); see `init(instance:info:forceDiscrete:)`.
    public convenience init(selector: String? = nil, validation: Bool? = nil, forceDiscrete: Bool? = nil) throws {
        let instance = try VulkanInstance(validation: validation)
        try self.init(instance: instance, info: instance.selectDevice(selector), forceDiscrete: forceDiscrete)
    }

    /// With `forceDiscrete` the device's memory is used as a discrete GPU's (`DeviceInfo.withSeparateMemory()`):
    /// `info` then reports no unified memory, so buffers and read paths take the staging route.
    public init(instance: VulkanInstance, info: DeviceInfo, forceDiscrete: Bool? = nil) throws {
        self.instance = instance
        let forced = forceDiscrete ?? (ProcessInfo.processInfo.environment["LAYERSHARE_FORCE_DISCRETE"] == "1")
        self.info = forced ? info.withSeparateMemory() : info
        let physical = instance.physicalDevices[info.index]
        self.physical = physical
        guard info.hasPushDescriptors else {
            throw VulkanError.missingFeature("\(info.name) does not offer VK_KHR_push_descriptor")
        }
        var familyCount: UInt32 = 0
        vkGetPhysicalDeviceQueueFamilyProperties(physical, &familyCount, nil)
        var families = [VkQueueFamilyProperties](repeating: VkQueueFamilyProperties(), count: Int(familyCount))
        vkGetPhysicalDeviceQueueFamilyProperties(physical, &familyCount, &families)
        guard let family = families.firstIndex(where: { $0.queueFlags & VkQueueFlags(VK_QUEUE_COMPUTE_BIT.rawValue) != 0 }) else {
            throw VulkanError.missingFeature("\(info.name) has no compute queue")
        }
        queueFamily = UInt32(family)

        // Features the shaders use: 16-bit and 8-bit storage reads, f16/i8/i16 arithmetic where offered.
        var f11 = VkPhysicalDeviceVulkan11Features()
        f11.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES
        var f12 = VkPhysicalDeviceVulkan12Features()
        f12.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES
        var features2 = VkPhysicalDeviceFeatures2()
        features2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2
        withUnsafeMutablePointer(to: &f11) { p11 in
            withUnsafeMutablePointer(to: &f12) { p12 in
                p11.pointee.pNext = UnsafeMutableRawPointer(p12)
                features2.pNext = UnsafeMutableRawPointer(p11)
                vkGetPhysicalDeviceFeatures2(physical, &features2)
                p11.pointee.pNext = nil
            }
        }
        guard f11.storageBuffer16BitAccess != 0 else {
            throw VulkanError.missingFeature("\(info.name) lacks storageBuffer16BitAccess")
        }
        var want11 = VkPhysicalDeviceVulkan11Features()
        want11.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES
        want11.storageBuffer16BitAccess = 1
        var want12 = VkPhysicalDeviceVulkan12Features()
        want12.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES
        want12.storageBuffer8BitAccess = f12.storageBuffer8BitAccess
        want12.shaderInt8 = f12.shaderInt8
        want12.shaderFloat16 = f12.shaderFloat16
        var wantFeatures = VkPhysicalDeviceFeatures2()
        wantFeatures.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2
        wantFeatures.features.shaderInt16 = features2.features.shaderInt16
        // Subgroup size control where offered, so pipelines can require full subgroups of a known size.
        var wantSizeControl = VkPhysicalDeviceSubgroupSizeControlFeatures()
        wantSizeControl.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES
        wantSizeControl.subgroupSizeControl = info.hasSubgroupSizeControl ? 1 : 0
        wantSizeControl.computeFullSubgroups = info.supportsComputeFullSubgroups ? 1 : 0
        let useSizeControl = info.hasSubgroupSizeControl || info.supportsComputeFullSubgroups
        let extensions = ["VK_KHR_push_descriptor"] + (useSizeControl ? ["VK_EXT_subgroup_size_control"] : [])

        var priority: Float = 1
        var device: VkDevice?
        let result: VkResult = withUnsafeMutablePointer(to: &want11) { p11 in
            withUnsafeMutablePointer(to: &want12) { p12 in withUnsafeMutablePointer(to: &wantSizeControl) { psc in
                p11.pointee.pNext = UnsafeMutableRawPointer(p12)
                if useSizeControl { p12.pointee.pNext = UnsafeMutableRawPointer(psc) }
                wantFeatures.pNext = UnsafeMutableRawPointer(p11)
                return withUnsafeMutablePointer(to: &wantFeatures) { pf in
                    withCStrings(extensions) { exts in
                        var queueInfo = VkDeviceQueueCreateInfo()
                        queueInfo.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO
                        queueInfo.queueFamilyIndex = UInt32(family)
                        queueInfo.queueCount = 1
                        return withUnsafePointer(to: &priority) { pr in
                            queueInfo.pQueuePriorities = pr
                            return withUnsafePointer(to: &queueInfo) { qi in
                                var info = VkDeviceCreateInfo()
                                info.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO
                                info.pNext = UnsafeRawPointer(pf)
                                info.queueCreateInfoCount = 1
                                info.pQueueCreateInfos = qi
                                info.enabledExtensionCount = UInt32(extensions.count)
                                info.ppEnabledExtensionNames = exts
                                return vkCreateDevice(physical, &info, nil, &device)
                            }
                        }
                    }
                }
            } }
        }
        try check(result, "vkCreateDevice(\(info.name))")
        handle = device!
        var q: VkQueue?
        vkGetDeviceQueue(handle, UInt32(family), 0, &q)
        queue = q!

        var poolInfo = VkCommandPoolCreateInfo()
        poolInfo.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO
        poolInfo.flags = VkCommandPoolCreateFlags(VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT.rawValue)
        poolInfo.queueFamilyIndex = UInt32(family)
        var pool: VkCommandPool?
        try check(vkCreateCommandPool(handle, &poolInfo, nil, &pool), "vkCreateCommandPool")
        commandPool = pool!

        guard let fn = vkGetDeviceProcAddr(handle, "vkCmdPushDescriptorSetKHR") else {
            throw VulkanError.missingFeature("vkCmdPushDescriptorSetKHR not loadable")
        }
        pushDescriptor = unsafeBitCast(fn, to: PFN_vkCmdPushDescriptorSetKHR.self)
        var mem = VkPhysicalDeviceMemoryProperties()
        vkGetPhysicalDeviceMemoryProperties(physical, &mem)
        memoryProperties = mem
        heapUsage = HeapUsage(sizes: info.heaps.map(\.size))
    }

    deinit {
        vkDeviceWaitIdle(handle)
        vkDestroyCommandPool(handle, commandPool, nil)
        vkDestroyDevice(handle, nil)
    }

    /// Index of a memory type allowed by `typeBits` having all of `required` flags, preferring `preferred`.
    func memoryType(typeBits: UInt32, required: VkMemoryPropertyFlags, preferred: VkMemoryPropertyFlags = 0) -> UInt32? {
        var best: UInt32?
        withUnsafeBytes(of: memoryProperties.memoryTypes) { raw in
            let types = raw.bindMemory(to: VkMemoryType.self)
            for i in 0..<Int(memoryProperties.memoryTypeCount) where typeBits & (1 << UInt32(i)) != 0 {
                let flags = types[i].propertyFlags
                guard flags & required == required else { continue }
                if flags & preferred == preferred { best = UInt32(i); return }
                if best == nil { best = UInt32(i) }
            }
        }
        return best
    }

    func heapIndex(ofType type: UInt32) -> Int {
        withUnsafeBytes(of: memoryProperties.memoryTypes) { Int($0.bindMemory(to: VkMemoryType.self)[Int(type)].heapIndex) }
    }

    /// Counts an allocation of `bytes` from memory type `type` against its heap; nil when it fits,
    /// else why it does not.
    func reserve(_ bytes: Int, memoryType type: UInt32) -> String? {
        allocationLock.lock(); defer { allocationLock.unlock() }
        if let refusal = heapUsage.reserve(bytes, heap: heapIndex(ofType: type)) { return refusal }
        allocatedBytes += bytes
        peakAllocatedBytes = max(peakAllocatedBytes, allocatedBytes)
        return nil
    }

    func countStaged(uploaded: Int = 0, downloaded: Int = 0) {
        allocationLock.lock(); defer { allocationLock.unlock() }
        staged.uploaded += uploaded
        staged.downloaded += downloaded
    }

    func release(_ bytes: Int, memoryType type: UInt32) {
        allocationLock.lock(); defer { allocationLock.unlock() }
        heapUsage.release(bytes, heap: heapIndex(ofType: type))
        allocatedBytes -= bytes
    }

    public func resetPeak() { allocationLock.lock(); peakAllocatedBytes = allocatedBytes; allocationLock.unlock() }

    public func waitIdle() { vkDeviceWaitIdle(handle) }

    /// Ends every submission: its compute and transfer writes made visible to the host (reads of
    /// mapped and staging memory after the fence) and to later submissions' compute and transfer
    /// commands, which then depend on this one by a barrier rather than on the host's fence wait.
    func recordHandOff(_ cb: VkCommandBuffer) {
        var mb = VkMemoryBarrier()
        mb.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER
        mb.srcAccessMask = VkAccessFlags(VK_ACCESS_SHADER_WRITE_BIT.rawValue | VK_ACCESS_TRANSFER_WRITE_BIT.rawValue)
        mb.dstAccessMask = VkAccessFlags(VK_ACCESS_HOST_READ_BIT.rawValue | VK_ACCESS_SHADER_READ_BIT.rawValue | VK_ACCESS_SHADER_WRITE_BIT.rawValue
                                         | VK_ACCESS_TRANSFER_READ_BIT.rawValue | VK_ACCESS_TRANSFER_WRITE_BIT.rawValue)
        let device = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT.rawValue | VK_PIPELINE_STAGE_TRANSFER_BIT.rawValue
        vkCmdPipelineBarrier(cb, VkPipelineStageFlags(device), VkPipelineStageFlags(device | VK_PIPELINE_STAGE_HOST_BIT.rawValue),
                             0, 1, &mb, 0, nil, 0, nil)
    }

    /// Records commands into a one-shot command buffer (ended by `recordHandOff`), submits and waits.
    func oneShot(_ record: (VkCommandBuffer) throws -> Void) throws {
        var alloc = VkCommandBufferAllocateInfo()
        alloc.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO
        alloc.commandPool = commandPool
        alloc.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY
        alloc.commandBufferCount = 1
        var cb: VkCommandBuffer?
        try check(vkAllocateCommandBuffers(handle, &alloc, &cb), "vkAllocateCommandBuffers")
        defer { vkFreeCommandBuffers(handle, commandPool, 1, &cb) }
        var begin = VkCommandBufferBeginInfo()
        begin.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO
        begin.flags = VkCommandBufferUsageFlags(VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT.rawValue)
        try check(vkBeginCommandBuffer(cb, &begin), "vkBeginCommandBuffer")
        try record(cb!)
        recordHandOff(cb!)
        try check(vkEndCommandBuffer(cb), "vkEndCommandBuffer")
        let fence = try Fence(device: self)
        try submit(cb!, fence: fence)
        try fence.wait()
    }

    func submit(_ cb: VkCommandBuffer, fence: Fence) throws {
        var cbOpt: VkCommandBuffer? = cb
        var submit = VkSubmitInfo()
        submit.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO
        submit.commandBufferCount = 1
        try withUnsafePointer(to: &cbOpt) { p in
            submit.pCommandBuffers = p
            try check(vkQueueSubmit(queue, 1, &submit, fence.handle), "vkQueueSubmit")
        }
    }
}

/// A fence owned by one device.
final class Fence {
    let device: VulkanDevice
    let handle: VkFence

    init(device: VulkanDevice) throws {
        self.device = device
        var info = VkFenceCreateInfo()
        info.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO
        var f: VkFence?
        try check(vkCreateFence(device.handle, &info, nil, &f), "vkCreateFence")
        handle = f!
    }

    func wait() throws {
        var f: VkFence? = handle
        try check(vkWaitForFences(device.handle, 1, &f, VkBool32(VK_TRUE), UInt64.max), "vkWaitForFences")
    }

    func reset() throws {
        var f: VkFence? = handle
        try check(vkResetFences(device.handle, 1, &f), "vkResetFences")
    }

    deinit { vkDestroyFence(device.handle, handle, nil) }
}
