/// Errors of the format-neutral model view (names, shapes, hyper-parameters).
public enum ModelError: Error, CustomStringConvertible, Equatable {
    case missingTensor(String)
    case shapeMismatch(tensor: String, expected: [Int], actual: [Int])
    case invalidHyperParameter(name: String, value: String, reason: String)
    case unsupportedArchitecture(String)
    case unsupportedFormat(path: String, reason: String)
    case invalidConfig(path: String, key: String, reason: String)
    case nonFiniteWeight(tensor: String, row: Int, column: Int, value: String)
    /// Tensors exist for layer `found` but the metadata key says there are `declared` layers.
    case extraLayers(found: Int, declared: Int, key: String)
    /// The metadata declares more layers than the file has tensors for (layers `0..<present`).
    case missingLayers(present: Int, declared: Int, key: String)
    case vocabularyMismatch(model: Int, tokenizer: Int, source: String)
    /// A GGUF with metadata but no tensors (llama.cpp's ggml-vocab-*.gguf).
    case vocabularyOnly(path: String)

    public var description: String {
        switch self {
        case let .missingTensor(n): return "missing tensor '\(n)'"
        case let .shapeMismatch(t, e, a): return "tensor '\(t)' has shape \(a), expected \(e)"
        case let .invalidHyperParameter(n, v, r): return "invalid hyper-parameter \(n) = \(v): \(r)"
        case let .unsupportedArchitecture(a): return "unsupported architecture '\(a)' (supported: \(LlamaHyperParameters.supportedArchitectures.joined(separator: ", ")))"
        case let .unsupportedFormat(p, r): return "cannot open model '\(p)': \(r)"
        case let .invalidConfig(p, k, r): return "\(p): key '\(k)' \(r)"
        case let .nonFiniteWeight(t, r, c, v):
            return "tensor '\(t)' holds a non-finite value (\(v)) at row \(r), column \(c): the model file is corrupt or was converted wrongly"
        case let .extraLayers(found, declared, key):
            return "the file has tensors for layer \(found) (blk.\(found).*) but \(key) says \(declared) layers: fix \(key) or remove the extra tensors"
        case let .missingLayers(present, declared, key):
            return "\(key) says \(declared) layers but the file has tensors only for layers 0..<\(present): fix \(key) or use the complete file"
        case let .vocabularyMismatch(model, tokenizer, source):
            return "the model's vocabulary has \(model) rows but the tokenizer (\(source)) has \(tokenizer) tokens: "
                + "the tokenizer would produce ids the embedding table lacks"
        case let .vocabularyOnly(p):
            return "\(p) is a vocabulary-only GGUF (no tensors): it can be tokenized (layershare tokenize) but not run"
        }
    }
}
