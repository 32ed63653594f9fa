import Foundation

/// What the Khronos validation layer checks. `LAYERSHARE_VALIDATION`: `1` = its default checks,
/// `sync` = those plus synchronization validation (hazards between commands, and between
/// submissions on the queue); anything else = off.
public enum ValidationMode: String, Sendable {
    case off, standard, synchronization

    public init(environment: [String: String]) {
        switch environment["LAYERSHARE_VALIDATION"] {
        case "1"?: self = .standard
        case "sync"?: self = .synchronization
        default: self = .off
        }
    }

    /// Runs `body` (vkCreateInstance) with the layer told to check hazards across queue submissions
    /// too. VK_EXT_validation_features has no value for that check in this layer version (1.3.239)
    /// and VK_EXT_layer_settings is newer, so it goes through the layer's VK_LAYER_ENABLES variable,
    /// which the layer reads during vkCreateInstance; the previous value is restored afterwards.
    static func withQueueSubmitChecks<R>(_ body: () throws -> R) rethrows -> R {
        let name = "VK_LAYER_ENABLES"
        let previous = getenv(name).map { String(cString: $0) }
        let checks = ["VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT",
                      "VALIDATION_CHECK_ENABLE_SYNCHRONIZATION_VALIDATION_QUEUE_SUBMIT"]
        setenv(name, ([previous].compactMap { $0 } + checks).joined(separator: ":"), 1)
        defer { if let previous { setenv(name, previous, 1) } else { unsetenv(name) } }
        return try body()
    }
}
