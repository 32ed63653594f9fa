import CVulkan
import Foundation

/// A buffer range bound to a shader binding, marked as read or written so the batch can place
/// barriers only where a dispatch depends on an earlier one. Storage-buffer bindings come from
/// read/write/readWrite, uniform-texel-buffer bindings from `texels` (read-only, hazards tracked
/// on the view's buffer).
public struct BufferBinding {
    public enum Access { case read, write, readWrite }
    public let buffer: DeviceBuffer
    public let offset: Int
    public let range: Int
    public let access: Access
    /// Set for texel-buffer bindings.
    public let texelView: TexelBufferView?

    init(buffer: DeviceBuffer, offset: Int, range: Int, access: Access, texelView: TexelBufferView? = nil) {
        self.buffer = buffer
        self.offset = offset
        self.range = range
        self.access = access
        self.texelView = texelView
    }

    public static func texels(_ view: TexelBufferView) -> BufferBinding {
        BufferBinding(buffer: view.buffer, offset: view.offset, range: view.range, access: .read, texelView: view)
    }

    public static func read(_ b: DeviceBuffer, offset: Int = 0, range: Int? = nil) -> BufferBinding {
        BufferBinding(buffer: b, offset: offset, range: range ?? (b.byteCount - offset), access: .read)
    }
    public static func write(_ b: DeviceBuffer, offset: Int = 0, range: Int? = nil) -> BufferBinding {
        BufferBinding(buffer: b, offset: offset, range: range ?? (b.byteCount - offset), access: .write)
    }
    public static func readWrite(_ b: DeviceBuffer, offset: Int = 0, range: Int? = nil) -> BufferBinding {
        BufferBinding(buffer: b, offset: offset, range: range ?? (b.byteCount - offset), access: .readWrite)
    }
}

/// One timed dispatch in a submitted batch.
public struct DispatchTiming: Sendable {
    public let label: String
    public let group: String
    public let startNs: Double
    public let durationNs: Double
    /// Bytes the operation must move and floating-point operations it must do (0 when not given).
    public let bytes: Double
    public let flops: Double
}

/// Records dispatches into one command buffer, submits them together and waits on a fence.
/// Reusable: `begin()` resets it. With `maxTimestamps > 0` and device support, a timestamp is
/// written after every dispatch, so per-dispatch intervals tile the whole batch.
public final class CommandBatch {
    public let device: VulkanDevice
    let commandBuffer: VkCommandBuffer
    let fence: Fence
    let queryPool: VkQueryPool?
    let queryCapacity: Int
    private var queryCount = 0
    private var labels: [(label: String, group: String, bytes: Double, flops: Double)] = []
    private var pendingCost: (bytes: Double, flops: Double)?
    private var written = Set<UInt>()
    private var readOnly = Set<UInt>()
    private var recording = false
    private var pending = false
    /// Dispatches and barriers recorded since `begin()`.
    public private(set) var dispatchCount = 0
    public private(set) var barrierCount = 0
    /// Buffer copies recorded since `begin()` (timed like dispatches, so a profile covers
    /// `dispatchCount + copyCount` commands).
    public private(set) var copyCount = 0
    /// Per-dispatch GPU timings of the last completed batch (empty without timestamps).
    public private(set) var timings: [DispatchTiming] = []
    /// Keeps buffers and views bound in this batch alive until it completes.
    private var retained: [AnyObject] = []

    public var timestampsEnabled: Bool { queryPool != nil }

    public init(device: VulkanDevice, maxTimestamps: Int = 0) throws {
        self.device = device
        var alloc = VkCommandBufferAllocateInfo()
        alloc.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO
        alloc.commandPool = device.commandPool
        alloc.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY
        alloc.commandBufferCount = 1
        var cb: VkCommandBuffer?
        try check(vkAllocateCommandBuffers(device.handle, &alloc, &cb), "vkAllocateCommandBuffers")
        commandBuffer = cb!
        fence = try Fence(device: device)
        if maxTimestamps > 0, device.info.timestampsSupported {
            var info = VkQueryPoolCreateInfo()
            info.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO
            info.queryType = VK_QUERY_TYPE_TIMESTAMP
            info.queryCount = UInt32(maxTimestamps + 1)
            var pool: VkQueryPool?
            try check(vkCreateQueryPool(device.handle, &info, nil, &pool), "vkCreateQueryPool")
            queryPool = pool
            queryCapacity = maxTimestamps + 1
        } else {
            queryPool = nil
            queryCapacity = 0
        }
    }

    deinit {
        if pending { try? fence.wait() }
        if let queryPool { vkDestroyQueryPool(device.handle, queryPool, nil) }
        var cb: VkCommandBuffer? = commandBuffer
        vkFreeCommandBuffers(device.handle, device.commandPool, 1, &cb)
    }

    public func begin() throws {
        precondition(!pending, "CommandBatch.begin() while a submission is in flight; call wait() first")
        try check(vkResetCommandBuffer(commandBuffer, 0), "vkResetCommandBuffer")
        var info = VkCommandBufferBeginInfo()
        info.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO
        info.flags = VkCommandBufferUsageFlags(VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT.rawValue)
        try check(vkBeginCommandBuffer(commandBuffer, &info), "vkBeginCommandBuffer")
        recording = true
        written.removeAll(keepingCapacity: true)
        readOnly.removeAll(keepingCapacity: true)
        labels.removeAll(keepingCapacity: true)
        retained.removeAll(keepingCapacity: true)
        dispatchCount = 0
        barrierCount = 0
        copyCount = 0
        queryCount = 0
        if let queryPool {
            vkCmdResetQueryPool(commandBuffer, queryPool, 0, UInt32(queryCapacity))
            vkCmdWriteTimestamp(commandBuffer, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, queryPool, 0)
            queryCount = 1
        }
    }

    /// Attributes the cost of the next operation (bytes it must move, flops it must do) to the next
    /// timed command, for bandwidth and throughput figures in profiles.
    public func setCost(bytes: Double, flops: Double) { pendingCost = (bytes, flops) }

    private func stamp(_ label: String, _ group: String) {
        guard let queryPool, queryCount < queryCapacity else { pendingCost = nil; return }
        vkCmdWriteTimestamp(commandBuffer, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, queryPool, UInt32(queryCount))
        queryCount += 1
        let cost = pendingCost ?? (0, 0)
        pendingCost = nil
        labels.append((label, group, cost.bytes, cost.flops))
    }

    /// A full compute→compute memory barrier; normally placed automatically.
    public func barrier() {
        var mb = VkMemoryBarrier()
        mb.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER
        mb.srcAccessMask = VkAccessFlags(VK_ACCESS_SHADER_WRITE_BIT.rawValue | VK_ACCESS_TRANSFER_WRITE_BIT.rawValue)
        mb.dstAccessMask = VkAccessFlags(VK_ACCESS_SHADER_READ_BIT.rawValue | VK_ACCESS_SHADER_WRITE_BIT.rawValue | VK_ACCESS_TRANSFER_READ_BIT.rawValue | VK_ACCESS_TRANSFER_WRITE_BIT.rawValue)
        let stages = VkPipelineStageFlags(VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT.rawValue | VK_PIPELINE_STAGE_TRANSFER_BIT.rawValue)
        vkCmdPipelineBarrier(commandBuffer, stages, stages, 0, 1, &mb, 0, nil, 0, nil)
        written.removeAll(keepingCapacity: true)
        readOnly.removeAll(keepingCapacity: true)
        barrierCount += 1
    }

    private func key(_ b: DeviceBuffer) -> UInt { UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(b.handle))) }

    /// Inserts a barrier if any binding touches a buffer written since the last barrier, or writes
    /// one that was read (write-after-read), then records the new accesses.
    private func track(_ accesses: [(DeviceBuffer, BufferBinding.Access)]) {
        let hazard = accesses.contains { b, access in
            let k = key(b)
            return written.contains(k) || (access != .read && readOnly.contains(k))
        }
        if hazard { barrier() }
        for (b, access) in accesses {
            if access == .read { readOnly.insert(key(b)) } else { written.insert(key(b)) }
        }
    }

    /// Records a dispatch. `group` names a coarser bucket (e.g. a layer) for profiles.
    public func dispatch(_ pipeline: ComputePipeline, _ bindings: [BufferBinding], push: [ShaderScalar] = [],
                         groups: (Int, Int, Int), label: String? = nil, group: String = "") throws {
        precondition(recording, "CommandBatch.dispatch() before begin()")
        guard bindings.count == pipeline.bindingCount else {
            throw VulkanError.invalidArgument("\(pipeline.label): \(bindings.count) buffers bound, shader expects \(pipeline.bindingCount)")
        }
        guard push.count * 4 == pipeline.pushConstantBytes else {
            throw VulkanError.invalidArgument("\(pipeline.label): \(push.count * 4) bytes of push constants, shader expects \(pipeline.pushConstantBytes)")
        }
        let limits = device.info.maxWorkgroupCount
        guard groups.0 >= 1, groups.1 >= 1, groups.2 >= 1, groups.0 <= limits.0, groups.1 <= limits.1, groups.2 <= limits.2 else {
            throw VulkanError.invalidArgument("\(pipeline.label): workgroup count \(groups) outside 1...\(limits)")
        }
        for (i, b) in bindings.enumerated() {
            let texel = pipeline.bindings[i] == .uniformTexelBuffer
            guard texel == (b.texelView != nil) else {
                throw VulkanError.invalidArgument("\(pipeline.label): binding \(i) expects a \(texel ? "texel view" : "storage buffer"), got \(texel ? "a storage buffer" : "a texel view") of '\(b.buffer.label)'")
            }
            if texel { continue }  // views are checked against the texel limits when made
            guard b.offset >= 0, b.range > 0, b.offset + b.range <= b.buffer.byteCount else {
                throw VulkanError.invalidArgument("\(pipeline.label): binding range \(b.offset)+\(b.range) outside buffer '\(b.buffer.label)' (\(b.buffer.byteCount) bytes)")
            }
            guard b.offset % device.info.minStorageBufferOffsetAlignment == 0 else {
                throw VulkanError.invalidArgument("\(pipeline.label): offset \(b.offset) into '\(b.buffer.label)' is not a multiple of minStorageBufferOffsetAlignment \(device.info.minStorageBufferOffsetAlignment)")
            }
            guard b.range <= device.info.maxStorageBufferRange else {
                throw VulkanError.bufferTooLarge(label: b.buffer.label, bytes: b.range, limit: device.info.maxStorageBufferRange, limitName: "maxStorageBufferRange")
            }
        }
        track(bindings.map { ($0.buffer, $0.access) })
        for b in bindings {  // buffers and views stay alive until the batch completes
            retained.append(b.buffer)
            if let v = b.texelView { retained.append(v) }
        }

        vkCmdBindPipeline(commandBuffer, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline.handle)
        let infos = bindings.map { VkDescriptorBufferInfo(buffer: $0.buffer.handle, offset: VkDeviceSize($0.offset), range: VkDeviceSize($0.range)) }
        let views: [VkBufferView?] = bindings.map { $0.texelView?.handle }
        infos.withUnsafeBufferPointer { infoPtr in
            views.withUnsafeBufferPointer { viewPtr in
                var writes = (0..<bindings.count).map { i -> VkWriteDescriptorSet in
                    var w = VkWriteDescriptorSet()
                    w.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET
                    w.dstBinding = UInt32(i)
                    w.descriptorCount = 1
                    w.descriptorType = pipeline.bindings[i].vkType
                    if views[i] != nil { w.pTexelBufferView = viewPtr.baseAddress! + i } else { w.pBufferInfo = infoPtr.baseAddress! + i }
                    return w
                }
                device.pushDescriptor(commandBuffer, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline.layout, 0, UInt32(writes.count), &writes)
            }
        }
        if !push.isEmpty {
            var words = push.map(\.bits)
            vkCmdPushConstants(commandBuffer, pipeline.layout, VkShaderStageFlags(VK_SHADER_STAGE_COMPUTE_BIT.rawValue), 0, UInt32(words.count * 4), &words)
        }
        vkCmdDispatch(commandBuffer, UInt32(groups.0), UInt32(groups.1), UInt32(groups.2))
        dispatchCount += 1
        stamp(label ?? pipeline.label, group)
    }

    /// Records a buffer-to-buffer copy (hazards tracked like a dispatch).
    public func copy(from src: DeviceBuffer, srcOffset: Int = 0, to dst: DeviceBuffer, dstOffset: Int = 0, bytes: Int,
                     label: String = "copy", group: String = "") throws {
        precondition(recording)
        guard srcOffset >= 0, dstOffset >= 0, bytes > 0, srcOffset + bytes <= src.byteCount, dstOffset + bytes <= dst.byteCount else {
            throw VulkanError.invalidArgument("copy of \(bytes) bytes from '\(src.label)'+\(srcOffset) to '\(dst.label)'+\(dstOffset) is out of range")
        }
        track([(src, .read), (dst, .write)])
        retained.append(src); retained.append(dst)
        var region = VkBufferCopy(srcOffset: VkDeviceSize(srcOffset), dstOffset: VkDeviceSize(dstOffset), size: VkDeviceSize(bytes))
        vkCmdCopyBuffer(commandBuffer, src.handle, dst.handle, 1, &region)
        copyCount += 1
        stamp(label, group)
    }

    /// Records a small host-to-buffer write into the command stream (vkCmdUpdateBuffer: at most 65,536
    /// bytes, a multiple of 4), so per-step inputs such as token ids need no staging buffer or extra submit.
    public func update(_ dst: DeviceBuffer, offset: Int = 0, bytes: UnsafeRawBufferPointer,
                       label: String = "update", group: String = "") throws {
        precondition(recording)
        guard bytes.count > 0, bytes.count <= 65_536, bytes.count % 4 == 0, offset % 4 == 0, offset >= 0,
              offset + bytes.count <= dst.byteCount, let base = bytes.baseAddress else {
            throw VulkanError.invalidArgument("update of \(bytes.count) bytes at \(offset) into '\(dst.label)' (\(dst.byteCount) bytes) is not allowed: at most 65,536 bytes, multiples of 4, in range")
        }
        track([(dst, .write)])
        retained.append(dst)
        vkCmdUpdateBuffer(commandBuffer, dst.handle, VkDeviceSize(offset), VkDeviceSize(bytes.count), base)
        copyCount += 1
        stamp(label, group)
    }

    /// Records one copy command with several regions (e.g. splitting the columns of a row-major tensor).
    public func copy(from src: DeviceBuffer, to dst: DeviceBuffer, regions: [(srcOffset: Int, dstOffset: Int, bytes: Int)],
                     label: String = "copy", group: String = "") throws {
        precondition(recording)
        guard !regions.isEmpty else { return }
        for r in regions {
            guard r.srcOffset >= 0, r.dstOffset >= 0, r.bytes > 0, r.srcOffset + r.bytes <= src.byteCount, r.dstOffset + r.bytes <= dst.byteCount else {
                throw VulkanError.invalidArgument("copy region of \(r.bytes) bytes from '\(src.label)'+\(r.srcOffset) to '\(dst.label)'+\(r.dstOffset) is out of range")
            }
        }
        track([(src, .read), (dst, .write)])
        retained.append(src); retained.append(dst)
        var list = regions.map { VkBufferCopy(srcOffset: VkDeviceSize($0.srcOffset), dstOffset: VkDeviceSize($0.dstOffset), size: VkDeviceSize($0.bytes)) }
        vkCmdCopyBuffer(commandBuffer, src.handle, dst.handle, UInt32(list.count), &list)
        copyCount += 1
        stamp(label, group)
    }

    public func submit() throws {
        precondition(recording, "CommandBatch.submit() before begin()")
        device.recordHandOff(commandBuffer)  // writes visible to host reads and to the next batch
        try check(vkEndCommandBuffer(commandBuffer), "vkEndCommandBuffer")
        recording = false
        try fence.reset()
        try device.submit(commandBuffer, fence: fence)
        pending = true
    }

    public func wait() throws {
        guard pending else { return }
        try fence.wait()
        pending = false
        retained.removeAll(keepingCapacity: true)
        readTimestamps()
    }

    /// submit() then wait().
    public func run() throws { try submit(); try wait() }

    private func readTimestamps() {
        timings.removeAll(keepingCapacity: true)
        guard let queryPool, queryCount > 1 else { return }
        var raw = [UInt64](repeating: 0, count: queryCount)
        let flags = VkQueryResultFlags(VK_QUERY_RESULT_64_BIT.rawValue | VK_QUERY_RESULT_WAIT_BIT.rawValue)
        guard vkGetQueryPoolResults(device.handle, queryPool, 0, UInt32(queryCount), raw.count * 8, &raw, 8, flags) == VK_SUCCESS else { return }
        let bits = device.info.timestampValidBits
        let mask: UInt64 = bits >= 64 ? .max : (UInt64(1) << UInt64(bits)) - 1
        let period = device.info.timestampPeriodNs
        var elapsed = 0.0
        for i in 1..<queryCount {
            let delta = (raw[i] &- raw[i - 1]) & mask  // modular difference survives counter wrap
            let ns = Double(delta) * period
            let l = labels[i - 1]
            timings.append(DispatchTiming(label: l.label, group: l.group, startNs: elapsed, durationNs: ns, bytes: l.bytes, flops: l.flops))
            elapsed += ns
        }
    }
}
