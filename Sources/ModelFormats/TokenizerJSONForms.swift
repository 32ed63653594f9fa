/// Which of the implemented tokenizers a `tokenizer.json` describes.
extension Tokenizer {
    /// The split regexes of Llama 3 and Qwen2 as their tokenizer.json files spell them.
    static let hfSplitPatterns: [String: PreTokenizer] = [
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#: .llama3,
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#: .qwen2,
    ]

    /// Recognises the pre-tokenizer configurations implemented here: `ByteLevel` (GPT-2's regex),
    /// `Digits(individual_digits)` + `ByteLevel` (SmolLM2), and an isolating `Split` on the Llama 3
    /// or Qwen2 regex followed by a `ByteLevel` that applies no regex of its own.
    static func hfPreTokenizer(_ v: Any?, path: String) throws -> PreTokenizer {
        guard let p = v as? [String: Any], let type = p["type"] as? String else {
            throw TokenizerError.unsupportedPreTokenizer("(none)")
        }
        func isByteLevel(_ d: [String: Any], regex: Bool) -> Bool {
            d["type"] as? String == "ByteLevel" && (d["use_regex"] as? Bool ?? true) == regex && !(d["add_prefix_space"] as? Bool ?? false)
        }
        if isByteLevel(p, regex: true) { return .gpt2 }
        if type == "Sequence", let items = p["pretokenizers"] as? [[String: Any]] {
            if items.count == 1, isByteLevel(items[0], regex: true) { return .gpt2 }
            if items.count == 2, items[0]["type"] as? String == "Digits", items[0]["individual_digits"] as? Bool == true,
               isByteLevel(items[1], regex: true) {
                return .gpt2IsolatedDigits
            }
            if items.count == 2, items[0]["type"] as? String == "Split", items[0]["behavior"] as? String == "Isolated",
               !(items[0]["invert"] as? Bool ?? false), isByteLevel(items[1], regex: false),
               let regex = (items[0]["pattern"] as? [String: Any])?["Regex"] as? String {
                guard let rule = hfSplitPatterns[regex] else { throw TokenizerError.unsupportedPreTokenizer("Split on \(regex)") }
                return rule
            }
            throw TokenizerError.unsupportedPreTokenizer("Sequence of " + items.map { $0["type"] as? String ?? "?" }.joined(separator: ", "))
        }
        throw TokenizerError.unsupportedPreTokenizer(type)
    }

    /// SentencePiece exported as a BPE tokenizer.json (Llama 2, Mistral, TinyLlama): byte fallback,
    /// and spaces turned into `▁` with one put in front, either by a `Prepend` + `Replace`
    /// normalizer and no pre-tokenizer, or by a non-splitting `Metaspace` pre-tokenizer.
    static func isSentencePieceJSON(_ root: [String: Any], model: [String: Any]) throws -> Bool {
        guard model["byte_fallback"] as? Bool == true else { return false }
        let marker = "\u{2581}"
        let normalizers: [[String: Any]] = {
            guard let n = root["normalizer"] as? [String: Any] else { return [] }
            return n["type"] as? String == "Sequence" ? n["normalizers"] as? [[String: Any]] ?? [] : [n]
        }()
        let prepends = normalizers.contains { $0["type"] as? String == "Prepend" && $0["prepend"] as? String == marker }
        let replaces = normalizers.contains {
            $0["type"] as? String == "Replace" && ($0["pattern"] as? [String: Any])?["String"] as? String == " "
                && $0["content"] as? String == marker
        }
        if prepends, replaces, !(root["pre_tokenizer"] is [String: Any]) { return true }
        if let p = root["pre_tokenizer"] as? [String: Any], p["type"] as? String == "Metaspace", p["replacement"] as? String == marker,
           p["prepend_scheme"] as? String ?? "always" != "never", !(p["split"] as? Bool ?? true), normalizers.isEmpty {
            return true
        }
        throw TokenizerError.unsupportedPreTokenizer("byte_fallback BPE without SentencePiece's ▁ handling")
    }

    /// Scores for SentencePiece from BPE merge ranks: a token's score falls with the rank of the
    /// first merge that builds it, so merging by highest score follows the merge order. Tokens no
    /// merge builds (single characters, byte tokens, added tokens) get the lowest score.
    static func scoresFromMerges(_ tokens: [String], _ merges: [(String, String)]) -> [Float] {
        var rankOf: [String: Int] = [:]
        for (r, (a, b)) in merges.enumerated() where rankOf[a + b] == nil { rankOf[a + b] = r }
        return tokens.map { t in rankOf[t].map { -Float($0) } ?? -Float(merges.count + 1) }
    }
}
