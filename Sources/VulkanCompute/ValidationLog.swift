import CVulkan
import Foundation

/// Collects messages from the Khronos validation layer. Tests fail when it holds any error or warning.
public final class ValidationLog: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [String] = []
    /// Print messages to stderr as they arrive (besides storing them).
    public var echo = true

    public init() {}

    public var messages: [String] { lock.lock(); defer { lock.unlock() }; return stored }

    func append(_ message: String) {
        lock.lock(); stored.append(message); lock.unlock()
        if echo { FileHandle.standardError.write(Data("[vulkan validation] \(message)\n".utf8)) }
    }

    public func clear() { lock.lock(); stored.removeAll(); lock.unlock() }
}

let debugCallback: PFN_vkDebugUtilsMessengerCallbackEXT = { severity, _, data, user in
    guard let user, let data else { return VkBool32(VK_FALSE) }
    let log = Unmanaged<ValidationLog>.fromOpaque(user).takeUnretainedValue()
    let text = data.pointee.pMessage.map { String(cString: $0) } ?? "(no message)"
    let level = (severity.rawValue & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT.rawValue) != 0 ? "error" : "warning"
    log.append("\(level): \(text)")
    return VkBool32(VK_FALSE)
}
