/// Errors of the format-neutral model view (names, shapes, hyper-parameters).
public enum ModelError: Error, CustomStringConvertible, Equatable {
    case missingTensor(String)
    case shapeMismatch(tensor: String, expected: [Int], actual: [Int])
    case invalidHyperParameter(name: String, value: String, reason: String)
    case unsupportedArchitecture(String)
    case unsupportedFormat(path: String, reason: String)
    case invalidConfig(path: String, key: String, reason: String)

    public var description: String {
        switch self {
        case let .missingTensor(n): return "missing tensor '\(n)'"
        case let .shapeMismatch(t, e, a): return "tensor '\(t)' has shape \(a), expected \(e)"
        case let .invalidHyperParameter(n, v, r): return "invalid hyper-parameter \(n) = \(v): \(r)"
        case let .unsupportedArchitecture(a): return "unsupported architecture '\(a)' (only llama is supported)"
        case let .unsupportedFormat(p, r): return "cannot open model '\(p)': \(r)"
        case let .invalidConfig(p, k, r): return "\(p): key '\(k)' \(r)"
        }
    }
}
