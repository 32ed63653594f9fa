import CVulkan
import Foundation

/// A Vulkan instance, optionally with the Khronos validation layer and a messenger that records
/// its messages into `validationLog`.
public final class VulkanInstance {
    public let handle: VkInstance
    public let validationLog: ValidationLog?
    private var messenger: VkDebugUtilsMessengerEXT?
    let physicalDevices: [VkPhysicalDevice]
    public let devices: [DeviceInfo]

    /// `validation: nil` reads the `LAYERSHARE_VALIDATION` environment variable (ValidationMode);
    /// `true` turns the layer on, with synchronization validation when that variable says `sync`.
    public convenience init(validation: Bool? = nil) throws {
        let fromEnvironment = ValidationMode(environment: ProcessInfo.processInfo.environment)
        switch validation {
        case nil: try self.init(mode: fromEnvironment)
        case true?: try self.init(mode: fromEnvironment == .off ? .standard : fromEnvironment)
        case false?: try self.init(mode: .off)
        }
    }

    public init(mode: ValidationMode) throws {
        var layers: [String] = []
        var extensions: [String] = []
        if mode != .off {
            guard Self.instanceLayerNames().contains("VK_LAYER_KHRONOS_validation") else {
                throw VulkanError.missingFeature("validation was requested but VK_LAYER_KHRONOS_validation is not installed (apt-get install vulkan-validationlayers)")
            }
            layers.append("VK_LAYER_KHRONOS_validation")
            extensions.append("VK_EXT_debug_utils")
            if mode == .synchronization { extensions.append("VK_EXT_validation_features") }
        }
        let log = mode != .off ? ValidationLog() : nil
        validationLog = log

        var app = VkApplicationInfo()
        app.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO
        app.apiVersion = (1 << 22) | (2 << 12)  // Vulkan 1.2
        let messengerInfo = log.map(Self.messengerInfo)
        var instance: VkInstance?
        let result: VkResult = withCStrings(layers) { layerPtrs in
            withCStrings(extensions) { extPtrs in
                "layershare".withCString { appName in
                    app.pApplicationName = appName
                    return withUnsafePointer(to: &app) { appPtr in
                        Self.withCreateChain(messenger: messengerInfo, synchronization: mode == .synchronization) { next in
                            var info = VkInstanceCreateInfo()
                            info.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO
                            info.pNext = next
                            info.pApplicationInfo = appPtr
                            info.enabledLayerCount = UInt32(layers.count)
                            info.ppEnabledLayerNames = layerPtrs
                            info.enabledExtensionCount = UInt32(extensions.count)
                            info.ppEnabledExtensionNames = extPtrs
                            return vkCreateInstance(&info, nil, &instance)
                        }
                    }
                }
            }
        }
        if result == VK_ERROR_INCOMPATIBLE_DRIVER || result == VK_ERROR_INITIALIZATION_FAILED {
            throw VulkanError.noDevice("vkCreateInstance: \(resultName(result))")
        }
        try check(result, "vkCreateInstance")
        handle = instance!

        if var info = messengerInfo {
            let create = unsafeBitCast(vkGetInstanceProcAddr(handle, "vkCreateDebugUtilsMessengerEXT"),
                                       to: PFN_vkCreateDebugUtilsMessengerEXT?.self)
            var m: VkDebugUtilsMessengerEXT?
            if let create, create(handle, &info, nil, &m) == VK_SUCCESS { messenger = m }
        }

        var count: UInt32 = 0
        try check(vkEnumeratePhysicalDevices(handle, &count, nil), "vkEnumeratePhysicalDevices")
        var list = [VkPhysicalDevice?](repeating: nil, count: Int(count))
        try check(vkEnumeratePhysicalDevices(handle, &count, &list), "vkEnumeratePhysicalDevices")
        physicalDevices = list.compactMap { $0 }
        devices = physicalDevices.enumerated().map { DeviceInfo(index: $0.offset, physical: $0.element) }
    }

    deinit {
        if let messenger {
            let destroy = unsafeBitCast(vkGetInstanceProcAddr(handle, "vkDestroyDebugUtilsMessengerEXT"),
                                        to: PFN_vkDestroyDebugUtilsMessengerEXT?.self)
            destroy?(handle, messenger, nil)
        }
        vkDestroyInstance(handle, nil)
    }

    /// Picks a device: `selector` is an index or a case-insensitive name fragment; nil reads
    /// `LAYERSHARE_DEVICE`, and without either the most capable kind wins (discrete > integrated > CPU).
    public func selectDevice(_ selector: String? = nil) throws -> DeviceInfo {
        guard !devices.isEmpty else { throw VulkanError.noDevice("the Vulkan loader reports 0 physical devices") }
        let chosen = selector ?? ProcessInfo.processInfo.environment["LAYERSHARE_DEVICE"]
        let listing = devices.map { "[\($0.index)] \($0.name)" }.joined(separator: ", ")
        guard let chosen, !chosen.isEmpty else {
            return devices.max { a, b in a.preference < b.preference || (a.preference == b.preference && a.index > b.index) }!
        }
        if let i = Int(chosen) {
            guard devices.indices.contains(i) else {
                throw VulkanError.deviceSelection("device index \(i) out of range; devices: \(listing)")
            }
            return devices[i]
        }
        let matches = devices.filter { $0.name.lowercased().contains(chosen.lowercased()) }
        guard let first = matches.first else {
            throw VulkanError.deviceSelection("no device name contains '\(chosen)'; devices: \(listing)")
        }
        return first
    }

    /// Calls `body` with the instance create info's pNext chain: the messenger's create info (so
    /// vkCreateInstance and vkDestroyInstance report too; objects alive at vkDestroyInstance are
    /// leaks) and, for synchronization validation, VkValidationFeaturesEXT enabling it.
    private static func withCreateChain(messenger: VkDebugUtilsMessengerCreateInfoEXT?, synchronization: Bool,
                                        _ body: (UnsafeRawPointer?) -> VkResult) -> VkResult {
        guard var messenger else { return body(nil) }
        return withUnsafePointer(to: &messenger) { messengerPtr in
            guard synchronization else { return body(UnsafeRawPointer(messengerPtr)) }
            var enable = VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT
            return withUnsafePointer(to: &enable) { enablePtr in
                var features = VkValidationFeaturesEXT()
                features.sType = VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT
                features.pNext = UnsafeRawPointer(messengerPtr)
                features.enabledValidationFeatureCount = 1
                features.pEnabledValidationFeatures = enablePtr
                return withUnsafePointer(to: &features) { featuresPtr in
                    ValidationMode.withQueueSubmitChecks { body(UnsafeRawPointer(featuresPtr)) }
                }
            }
        }
    }

    /// Warnings and errors of every type go to `log`.
    private static func messengerInfo(_ log: ValidationLog) -> VkDebugUtilsMessengerCreateInfoEXT {
        var info = VkDebugUtilsMessengerCreateInfoEXT()
        info.sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT
        info.messageSeverity = VkDebugUtilsMessageSeverityFlagsEXT(
            VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT.rawValue | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT.rawValue)
        info.messageType = VkDebugUtilsMessageTypeFlagsEXT(
            VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT.rawValue | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT.rawValue
                | VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT.rawValue)
        info.pfnUserCallback = debugCallback
        info.pUserData = Unmanaged.passUnretained(log).toOpaque()
        return info
    }

    static func instanceLayerNames() -> [String] {
        var count: UInt32 = 0
        vkEnumerateInstanceLayerProperties(&count, nil)
        var props = [VkLayerProperties](repeating: VkLayerProperties(), count: Int(count))
        vkEnumerateInstanceLayerProperties(&count, &props)
        return props.map { p in withUnsafeBytes(of: p.layerName) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) } }
    }
}

/// Calls `body` with a C array of C strings that lives for the duration of the call.
func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> R) -> R {
    let dup = strings.map { UnsafePointer(strdup($0)) }
    defer { dup.forEach { free(UnsafeMutablePointer(mutating: $0)) } }
    return dup.withUnsafeBufferPointer { body(strings.isEmpty ? nil : $0.baseAddress) }
}
