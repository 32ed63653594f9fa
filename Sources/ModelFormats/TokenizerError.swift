import Foundation

public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    case idOutOfRange(Int, Int)
    case unsupportedModel(String)
    case unsupportedPreTokenizer(String)
    case invalidVocabulary(String)
    case invalidJSON(path: String, reason: String)

    public var description: String {
        switch self {
        case let .idOutOfRange(id, vocab): return "token id \(id) is outside the vocabulary (0..<\(vocab))"
        case let .unsupportedModel(m):
            return "unsupported tokenizer model '\(m)' (supported: gpt2 = byte-level BPE, llama = SentencePiece)"
        case let .unsupportedPreTokenizer(p):
            let names = PreTokenizer.ggmlPreValues.map(\.name).joined(separator: ", ")
            return "unsupported pre-tokenizer '\(p)' (supported tokenizer.ggml.pre values: \(names); in tokenizer.json: "
                + "ByteLevel, Digits + ByteLevel, Split on the Llama 3 or Qwen2 regex + ByteLevel, SentencePiece's Metaspace or Prepend + Replace)"
        case let .invalidVocabulary(r): return "invalid tokenizer vocabulary: \(r)"
        case let .invalidJSON(p, r): return "\(p): \(r)"
        }
    }
}

extension TokenizerError: LocalizedError { public var errorDescription: String? { description } }
