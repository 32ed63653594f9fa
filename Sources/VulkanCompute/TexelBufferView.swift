import CVulkan
import Foundation

/// Kind of a descriptor binding in a compute pipeline's (push-descriptor) set.
public enum DescriptorKind: Hashable, Sendable {
    /// `buffer` block in GLSL; bound with `BufferBinding.read/write/readWrite`.
    case storageBuffer
    /// `uniform usamplerBuffer` / `samplerBuffer` in GLSL, read with texelFetch; bound with
    /// `BufferBinding.texels(view)`.
    case uniformTexelBuffer
}

/// Texel formats for reading buffers through a texel view: unsigned integers for raw bytes,
/// rgba32Float for float32 data (4 floats per fetch).
public enum TexelFormat: Hashable, Sendable, CustomStringConvertible {
    case r16Uint, r32Uint, rgba32Uint, rgba32Float

    public var bytesPerTexel: Int {
        switch self {
        case .r16Uint: return 2
        case .r32Uint: return 4
        case .rgba32Uint, .rgba32Float: return 16
        }
    }

    var vkFormat: VkFormat {
        switch self {
        case .r16Uint: return VK_FORMAT_R16_UINT
        case .r32Uint: return VK_FORMAT_R32_UINT
        case .rgba32Uint: return VK_FORMAT_R32G32B32A32_UINT
        case .rgba32Float: return VK_FORMAT_R32G32B32A32_SFLOAT
        }
    }

    public var description: String {
        switch self {
        case .r16Uint: return "R16_UINT"
        case .r32Uint: return "R32_UINT"
        case .rgba32Uint: return "R32G32B32A32_UINT"
        case .rgba32Float: return "R32G32B32A32_SFLOAT"
        }
    }
}

extension VulkanDevice {
    /// True when `format` can back a uniform texel buffer on this device.
    public func supportsUniformTexelBuffer(_ format: TexelFormat) -> Bool {
        var props = VkFormatProperties()
        vkGetPhysicalDeviceFormatProperties(physical, format.vkFormat, &props)
        return props.bufferFeatures & VkFormatFeatureFlags(VK_FORMAT_FEATURE_UNIFORM_TEXEL_BUFFER_BIT.rawValue) != 0
    }
}

/// A read-only typed view (VkBufferView) of a byte range of a storage `DeviceBuffer`, bound to
/// `DescriptorKind.uniformTexelBuffer` bindings. Some drivers fetch texels with vector gathers where
/// storage-buffer loads are scalar per invocation (Mesa's lavapipe), which makes this the faster
/// path for streaming weights there. Keeps its buffer alive (except the view cached by the buffer
/// itself, `DeviceBuffer.floatTexelView`, which must not form a cycle); destroyed on deinit.
public final class TexelBufferView {
    public var buffer: DeviceBuffer { owner ?? cachedBy! }
    private let owner: DeviceBuffer?
    private unowned(unsafe) let cachedBy: DeviceBuffer?
    private let device: VulkanDevice
    public let format: TexelFormat
    /// Byte range of `buffer` the view covers.
    public let offset: Int
    public let range: Int
    let handle: VkBufferView

    public var texelCount: Int { range / format.bytesPerTexel }

    /// `range` defaults to the rest of the buffer, rounded down to whole texels.
    public convenience init(buffer: DeviceBuffer, format: TexelFormat, offset: Int = 0, range: Int? = nil) throws {
        try self.init(buffer: buffer, format: format, offset: offset, range: range, retainBuffer: true)
    }

    init(buffer: DeviceBuffer, format: TexelFormat, offset: Int, range: Int?, retainBuffer: Bool) throws {
        let device = buffer.device
        let info = device.info
        let size = format.bytesPerTexel
        let r = range ?? ((buffer.byteCount - offset) / size * size)
        let what = "texel view of '\(buffer.label)' (\(format), bytes \(offset)..<\(offset + r))"
        guard device.supportsUniformTexelBuffer(format) else {
            throw VulkanError.missingFeature("\(info.name) cannot read \(format) uniform texel buffers (\(what))")
        }
        guard offset >= 0, r > 0, offset + r <= buffer.byteCount, r % size == 0 else {
            throw VulkanError.invalidArgument("\(what): range outside the \(buffer.byteCount)-byte buffer or not whole texels")
        }
        guard info.minTexelBufferOffsetAlignment > 0, offset % info.minTexelBufferOffsetAlignment == 0 else {
            throw VulkanError.invalidArgument("\(what): offset is not a multiple of minTexelBufferOffsetAlignment \(info.minTexelBufferOffsetAlignment)")
        }
        guard r / size <= info.maxTexelBufferElements else {
            throw VulkanError.bufferTooLarge(label: what, bytes: r, limit: info.maxTexelBufferElements * size, limitName: "maxTexelBufferElements (× texel size)")
        }
        var create = VkBufferViewCreateInfo()
        create.sType = VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO
        create.buffer = buffer.handle
        create.format = format.vkFormat
        create.offset = VkDeviceSize(offset)
        create.range = VkDeviceSize(r)
        var view: VkBufferView?
        try check(vkCreateBufferView(device.handle, &create, nil, &view), "vkCreateBufferView(\(what))")
        handle = view!
        owner = retainBuffer ? buffer : nil
        cachedBy = retainBuffer ? nil : buffer
        self.device = device
        self.format = format
        self.offset = offset
        self.range = r
    }

    deinit {
        vkDestroyBufferView(device.handle, handle, nil)
    }
}
