import CVulkan
import Foundation

/// A storage buffer in device memory. On unified-memory devices it is host-visible and stays mapped;
/// elsewhere (and when separate memory is forced, `VulkanDevice(forceDiscrete:)`) it is device-local,
/// never mapped, and uploads/downloads go through staging buffers and copy commands.
public final class DeviceBuffer {
    public let device: VulkanDevice
    public let handle: VkBuffer
    public let byteCount: Int
    public let label: String
    let memory: VkDeviceMemory
    let memoryTypeIndex: UInt32
    let allocationSize: Int
    /// Host pointer when the memory is mapped (unified devices and staging buffers).
    public let mapped: UnsafeMutableRawPointer?

    public enum Kind { case storage, staging }
    public let kind: Kind

    public init(device: VulkanDevice, byteCount: Int, label: String, kind: Kind = .storage) throws {
        guard byteCount > 0 else { throw VulkanError.invalidArgument("buffer '\(label)': size must be positive, got \(byteCount)") }
        let info = device.info
        if kind == .storage, byteCount > info.maxStorageBufferRange {
            throw VulkanError.bufferTooLarge(label: label, bytes: byteCount, limit: info.maxStorageBufferRange, limitName: "maxStorageBufferRange")
        }
        if info.maxMemoryAllocationSize > 0, byteCount > info.maxMemoryAllocationSize {
            throw VulkanError.bufferTooLarge(label: label, bytes: byteCount, limit: info.maxMemoryAllocationSize, limitName: "maxMemoryAllocationSize")
        }
        self.device = device
        self.byteCount = byteCount
        self.label = label
        self.kind = kind

        var bufferInfo = VkBufferCreateInfo()
        bufferInfo.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO
        bufferInfo.size = VkDeviceSize(byteCount)
        let transfer = VK_BUFFER_USAGE_TRANSFER_SRC_BIT.rawValue | VK_BUFFER_USAGE_TRANSFER_DST_BIT.rawValue
        // Storage buffers may also be read through uniform texel-buffer views (TexelBufferView).
        let storage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT.rawValue | VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT.rawValue
        bufferInfo.usage = VkBufferUsageFlags(kind == .storage ? (storage | transfer) : transfer)
        bufferInfo.sharingMode = VK_SHARING_MODE_EXCLUSIVE
        var buffer: VkBuffer?
        try check(vkCreateBuffer(device.handle, &bufferInfo, nil, &buffer), "vkCreateBuffer('\(label)', \(byteCount) bytes)")

        var req = VkMemoryRequirements()
        vkGetBufferMemoryRequirements(device.handle, buffer, &req)
        let hostFlags = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT.rawValue | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT.rawValue
        let deviceLocal = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT.rawValue
        let required: UInt32
        let preferred: UInt32
        switch kind {
        case .staging: required = hostFlags; preferred = hostFlags | VK_MEMORY_PROPERTY_HOST_CACHED_BIT.rawValue
        case .storage where info.unifiedMemory: required = hostFlags | deviceLocal; preferred = required
        case .storage: required = deviceLocal; preferred = deviceLocal
        }
        guard let typeIndex = device.memoryType(typeBits: req.memoryTypeBits, required: VkMemoryPropertyFlags(required), preferred: VkMemoryPropertyFlags(preferred)) else {
            vkDestroyBuffer(device.handle, buffer, nil)
            throw VulkanError.outOfMemory(label: label, bytes: byteCount, detail: "no suitable memory type")
        }
        if let refusal = device.reserve(Int(req.size), memoryType: typeIndex) {
            vkDestroyBuffer(device.handle, buffer, nil)
            throw VulkanError.outOfMemory(label: label, bytes: byteCount, detail: refusal)
        }
        var alloc = VkMemoryAllocateInfo()
        alloc.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO
        alloc.allocationSize = req.size
        alloc.memoryTypeIndex = typeIndex
        var memory: VkDeviceMemory?
        let result = vkAllocateMemory(device.handle, &alloc, nil, &memory)
        guard result == VK_SUCCESS, let memory else {
            device.release(Int(req.size), memoryType: typeIndex)
            vkDestroyBuffer(device.handle, buffer, nil)
            throw VulkanError.outOfMemory(label: label, bytes: byteCount, detail: "vkAllocateMemory returned \(resultName(result))")
        }
        var ptr: UnsafeMutableRawPointer?
        do {
            try check(vkBindBufferMemory(device.handle, buffer, memory, 0), "vkBindBufferMemory('\(label)')")
            if kind == .staging || info.unifiedMemory {
                try check(vkMapMemory(device.handle, memory, 0, VkDeviceSize(VK_WHOLE_SIZE), 0, &ptr), "vkMapMemory('\(label)')")
            }
        } catch {
            vkDestroyBuffer(device.handle, buffer, nil)
            vkFreeMemory(device.handle, memory, nil)
            device.release(Int(req.size), memoryType: typeIndex)
            throw error
        }
        handle = buffer!
        self.memory = memory
        memoryTypeIndex = typeIndex
        allocationSize = Int(req.size)
        mapped = ptr
    }

    deinit {
        cachedFloatView = nil  // the view is destroyed before its buffer
        if mapped != nil { vkUnmapMemory(device.handle, memory) }
        vkDestroyBuffer(device.handle, handle, nil)
        vkFreeMemory(device.handle, memory, nil)
        device.release(allocationSize, memoryType: memoryTypeIndex)
    }

    private let viewLock = NSLock()
    private var cachedFloatView: TexelBufferView?
    private var floatViewUnavailable = false

    /// The whole buffer as R32G32B32A32_SFLOAT texels (4 floats per fetch), made on first use and
    /// kept with the buffer, so kernels can bind activations as texels without a view per dispatch.
    /// nil for staging buffers, or when the device cannot read that format as a uniform texel
    /// buffer or the buffer exceeds maxTexelBufferElements. A trailing partial texel is not covered.
    /// The view does not keep the buffer alive (that would be a cycle): use it only while the buffer
    /// lives (CommandBatch retains a binding's buffer until the batch completes).
    public var floatTexelView: TexelBufferView? {
        viewLock.lock(); defer { viewLock.unlock() }
        if let v = cachedFloatView { return v }
        if floatViewUnavailable { return nil }
        let texels = byteCount / 16
        if kind == .storage, texels > 0, texels <= device.info.maxTexelBufferElements,
           device.supportsUniformTexelBuffer(.rgba32Float),
           let v = try? TexelBufferView(buffer: self, format: .rgba32Float, offset: 0, range: texels * 16, retainBuffer: false) {
            cachedFloatView = v
            return v
        }
        floatViewUnavailable = true
        return nil
    }

    private func checkRange(_ offset: Int, _ count: Int) throws {
        guard offset >= 0, count >= 0, offset + count <= byteCount else {
            throw VulkanError.invalidArgument("buffer '\(label)': range \(offset)..<\(offset + count) outside its \(byteCount) bytes")
        }
    }

    /// Largest staging buffer one upload or download allocates; longer transfers go in pieces.
    static let stagingChunkBytes = 64 << 20

    /// Calls `body(staging, done, n)` for consecutive pieces of `count` bytes (n bytes after the
    /// first `done`) through one staging buffer.
    private func throughStaging(_ count: Int, _ body: (DeviceBuffer, Int, Int) throws -> Void) throws {
        let allocationLimit = device.info.maxMemoryAllocationSize > 0 ? device.info.maxMemoryAllocationSize : Int.max
        let staging = try DeviceBuffer(device: device, byteCount: min(count, Self.stagingChunkBytes, allocationLimit),
                                       label: "staging for \(label)", kind: .staging)
        var done = 0
        while done < count {
            let n = min(staging.byteCount, count - done)
            try body(staging, done, n)
            done += n
        }
    }

    /// Copies host bytes into the buffer. Must not overlap GPU work in flight on this buffer.
    public func upload(_ bytes: UnsafeRawBufferPointer, at offset: Int = 0) throws {
        try checkRange(offset, bytes.count)
        guard bytes.count > 0, let base = bytes.baseAddress else { return }
        if let mapped {
            (mapped + offset).copyMemory(from: base, byteCount: bytes.count)
            return
        }
        try throughStaging(bytes.count) { staging, done, n in
            staging.mapped!.copyMemory(from: base + done, byteCount: n)
            try device.oneShot { cb in
                var region = VkBufferCopy(srcOffset: 0, dstOffset: VkDeviceSize(offset + done), size: VkDeviceSize(n))
                vkCmdCopyBuffer(cb, staging.handle, handle, 1, &region)
            }
            device.countStaged(uploaded: n)
        }
    }

    /// Copies buffer bytes to host memory.
    public func download(into bytes: UnsafeMutableRawBufferPointer, from offset: Int = 0) throws {
        try checkRange(offset, bytes.count)
        guard bytes.count > 0, let base = bytes.baseAddress else { return }
        if let mapped {
            base.copyMemory(from: mapped + offset, byteCount: bytes.count)
            return
        }
        try throughStaging(bytes.count) { staging, done, n in
            try device.oneShot { cb in
                var region = VkBufferCopy(srcOffset: VkDeviceSize(offset + done), dstOffset: 0, size: VkDeviceSize(n))
                vkCmdCopyBuffer(cb, handle, staging.handle, 1, &region)
            }
            (base + done).copyMemory(from: staging.mapped!, byteCount: n)
            device.countStaged(downloaded: n)
        }
    }

    public func upload<T>(_ values: [T], at offset: Int = 0) throws {
        try values.withUnsafeBytes { try upload($0, at: offset) }
    }

    public func download<T>(_ type: T.Type, count: Int, from offset: Int = 0) throws -> [T] {
        var out = [T](unsafeUninitializedCapacity: count) { _, n in n = count }
        try out.withUnsafeMutableBytes { try download(into: $0, from: offset) }
        return out
    }

    /// Fills the whole buffer with a repeated 32-bit pattern (used to poison outputs before tests).
    public func fill(_ pattern: UInt32) throws {
        try device.oneShot { cb in
            vkCmdFillBuffer(cb, handle, 0, VkDeviceSize(byteCount & ~3), pattern)
        }
    }
}
