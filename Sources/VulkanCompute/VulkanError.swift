import Foundation
import CVulkan

/// Errors raised by the Vulkan runtime. Each message names what failed and, where it helps, the fix.
public enum VulkanError: Error, CustomStringConvertible {
    case call(String, VkResult)
    case noDevice(String)
    case deviceSelection(String)
    case missingFeature(String)
    case bufferTooLarge(label: String, bytes: Int, limit: Int, limitName: String)
    case outOfMemory(label: String, bytes: Int, detail: String)
    case shaderNotFound(String)
    case shaderCompile(file: String, log: String)
    case invalidArgument(String)

    public var description: String {
        switch self {
        case let .call(what, result):
            return "Vulkan call \(what) failed: \(resultName(result))"
        case let .noDevice(detail):
            return "no Vulkan device found (\(detail)). Install a Vulkan driver; on a machine without a GPU, "
                + "Mesa's CPU driver lavapipe works: `apt-get install mesa-vulkan-drivers libvulkan1` (tools/bootstrap does this); "
                + "or run on the CPU reference backend with --backend cpu"
        case let .deviceSelection(detail):
            return "device selection: \(detail)"
        case let .missingFeature(detail):
            return "the Vulkan device lacks a required feature: \(detail)"
        case let .bufferTooLarge(label, bytes, limit, limitName):
            return "buffer '\(label)' needs \(formatBytes(bytes)) but the device's \(limitName) is \(formatBytes(limit))"
        case let .outOfMemory(label, bytes, detail):
            return "out of device memory allocating \(formatBytes(bytes)) for '\(label)' (\(detail))"
        case let .shaderNotFound(name):
            return "shader source not found: \(name)"
        case let .shaderCompile(file, log):
            return "shader \(file) failed to compile:\n\(log)"
        case let .invalidArgument(detail):
            return detail
        }
    }
}

/// Human-readable byte count (binary units).
public func formatBytes(_ bytes: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024, unit < units.count - 1 { value /= 1024; unit += 1 }
    return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
}

func resultName(_ r: VkResult) -> String {
    switch r {
    case VK_ERROR_OUT_OF_HOST_MEMORY: return "VK_ERROR_OUT_OF_HOST_MEMORY"
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "VK_ERROR_OUT_OF_DEVICE_MEMORY"
    case VK_ERROR_INITIALIZATION_FAILED: return "VK_ERROR_INITIALIZATION_FAILED"
    case VK_ERROR_DEVICE_LOST: return "VK_ERROR_DEVICE_LOST"
    case VK_ERROR_LAYER_NOT_PRESENT: return "VK_ERROR_LAYER_NOT_PRESENT"
    case VK_ERROR_EXTENSION_NOT_PRESENT: return "VK_ERROR_EXTENSION_NOT_PRESENT"
    case VK_ERROR_FEATURE_NOT_PRESENT: return "VK_ERROR_FEATURE_NOT_PRESENT"
    case VK_ERROR_INCOMPATIBLE_DRIVER: return "VK_ERROR_INCOMPATIBLE_DRIVER (no Vulkan driver installed?)"
    case VK_ERROR_TOO_MANY_OBJECTS: return "VK_ERROR_TOO_MANY_OBJECTS"
    case VK_TIMEOUT: return "VK_TIMEOUT"
    default: return "VkResult(\(r.rawValue))"
    }
}

@inline(__always)
func check(_ result: VkResult, _ what: @autoclosure () -> String) throws {
    if result != VK_SUCCESS { throw VulkanError.call(what(), result) }
}
