import Foundation

extension Tokenizer {
    /// Reads `tokenizer.ggml.*` from a GGUF file: model `gpt2` (byte-level BPE, pre-tokenizer from
    /// `tokenizer.ggml.pre`) or `llama` (SentencePiece with `tokenizer.ggml.scores`). The file may be
    /// vocabulary-only (no tensors).
    public convenience init(gguf: GGUFFile) throws {
        let model = try gguf.string("tokenizer.ggml.model")
        let tokens = try gguf.stringArray("tokenizer.ggml.tokens")
        var types = [TokenType](repeating: .normal, count: tokens.count)
        if gguf.metadata["tokenizer.ggml.token_type"] != nil {
            let raw = try gguf.intArray("tokenizer.ggml.token_type")
            guard raw.count == tokens.count else {
                throw TokenizerError.invalidVocabulary("tokenizer.ggml.token_type has \(raw.count) entries for \(tokens.count) tokens")
            }
            types = raw.map { TokenType(rawValue: $0) ?? .normal }
        }
        let bos = try gguf.optionalInt("tokenizer.ggml.bos_token_id")
        let eos = try gguf.optionalInt("tokenizer.ggml.eos_token_id")
        let pad = try gguf.optionalInt("tokenizer.ggml.padding_token_id")
        let addEos = try gguf.optionalBool("tokenizer.ggml.add_eos_token") ?? false
        switch model {
        case "gpt2":
            let preName = try gguf.optionalString("tokenizer.ggml.pre") ?? "default"
            guard let pre = PreTokenizer(ggmlPre: preName) else { throw TokenizerError.unsupportedPreTokenizer(preName) }
            let merges = try gguf.stringArray("tokenizer.ggml.merges").enumerated().map { i, m -> (String, String) in
                guard let pair = Self.splitMerge(m) else {
                    throw TokenizerError.invalidVocabulary("tokenizer.ggml.merges[\(i)] = \"\(m)\" is not two tokens separated by a space")
                }
                return pair
            }
            let llama3 = PreTokenizer.llama3Family.contains(preName)
            try self.init(tokens: tokens, types: types, merges: merges, preTokenizer: pre, bosId: bos, eosId: eos, padId: pad,
                          addBosToken: try gguf.optionalBool("tokenizer.ggml.add_bos_token") ?? llama3,
                          addEosToken: addEos, ignoreMerges: llama3)
        case "llama":
            let scores = try gguf.array("tokenizer.ggml.scores").enumerated().map { i, v -> Float in
                guard let f = v.float else {
                    throw GGUFError.typeMismatch(key: "tokenizer.ggml.scores[\(i)]", actual: v.typeName, expected: "float")
                }
                // NaN would make the merge order meaningless.
                guard !f.isNaN else { throw TokenizerError.invalidVocabulary("tokenizer.ggml.scores[\(i)] is NaN") }
                return Float(f)
            }
            try self.init(sentencePieceTokens: tokens, scores: scores, types: types, bosId: bos, eosId: eos, padId: pad,
                          addBosToken: try gguf.optionalBool("tokenizer.ggml.add_bos_token") ?? true, addEosToken: addEos,
                          addSpacePrefix: try gguf.optionalBool("tokenizer.ggml.add_space_prefix") ?? true)
        default:
            throw TokenizerError.unsupportedModel(model)
        }
    }

    /// "a b" → ("a", "b"); byte-level tokens never contain a real space.
    static func splitMerge(_ m: String) -> (String, String)? {
        guard let sp = m.firstIndex(of: " ") else { return nil }
        let a = String(m[..<sp]), b = String(m[m.index(after: sp)...])
        return a.isEmpty || b.isEmpty ? nil : (a, b)
    }
}
