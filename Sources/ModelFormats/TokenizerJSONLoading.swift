import Foundation

extension Tokenizer {
    /// Reads a Hugging Face `tokenizer.json`: a BPE model with one of the ByteLevel pre-tokenizers of
    /// `hfPreTokenizer`, or SentencePiece-style (`byte_fallback`, `▁` for spaces). BOS/EOS come
    /// from `tokenizer_config.json` beside it when present (`bos_token`, `eos_token`), else
    /// `<|endoftext|>` is used as EOS when it exists.
    public convenience init(huggingFaceJSON path: String) throws {
        guard let data = try FileCheck.contentsIfPresent(path, "tokenizer") else {
            throw TokenizerError.invalidJSON(path: path, reason: "cannot read file")
        }
        let configPath = ((path as NSString).deletingLastPathComponent as NSString).appendingPathComponent("tokenizer_config.json")
        try self.init(huggingFaceJSON: data, config: FileCheck.contentsIfPresent(configPath, "tokenizer config"), path: path)
    }

    /// The same from the contents of `tokenizer.json` and of `tokenizer_config.json` (nil when there
    /// is none); `path` names the first in errors.
    public convenience init(huggingFaceJSON data: Data, config: Data?, path: String) throws {
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw TokenizerError.invalidJSON(path: path, reason: "not a JSON object")
        }
        guard let model = root["model"] as? [String: Any] else {
            throw TokenizerError.invalidJSON(path: path, reason: "missing 'model'")
        }
        let modelType = model["type"] as? String ?? "BPE"
        guard modelType == "BPE" else { throw TokenizerError.unsupportedModel(modelType) }
        guard let vocabObj = model["vocab"] as? [String: Any] else {
            throw TokenizerError.invalidJSON(path: path, reason: "missing 'model.vocab'")
        }
        var byId: [Int: String] = [:]
        for (tok, v) in vocabObj {
            guard let id = JSON.int(v), id >= 0, id < 1 << 23 else {
                throw TokenizerError.invalidJSON(path: path, reason: "vocab entry '\(tok)' has an invalid id")
            }
            byId[id] = tok
        }
        var special = Set<Int>()
        var userDefined = Set<Int>()
        for case let t as [String: Any] in root["added_tokens"] as? [Any] ?? [] {
            guard let id = JSON.int(t["id"]), id >= 0, id < 1 << 23, let content = t["content"] as? String else {
                throw TokenizerError.invalidJSON(path: path, reason: "malformed added_tokens entry")
            }
            byId[id] = content
            if (t["special"] as? Bool) ?? false { special.insert(id) } else { userDefined.insert(id) }
        }
        let count = (byId.keys.max() ?? -1) + 1
        var tokens = [String](repeating: "", count: count)
        var types = [TokenType](repeating: .unused, count: count)
        for (id, t) in byId {
            tokens[id] = t
            types[id] = special.contains(id) ? .control : userDefined.contains(id) ? .userDefined : .normal
        }
        var merges: [(String, String)] = []
        for (i, m) in (model["merges"] as? [Any] ?? []).enumerated() {
            if let s = m as? String, let pair = Self.splitMerge(s) {
                merges.append(pair)
            } else if let p = m as? [Any], p.count == 2, let a = p[0] as? String, let b = p[1] as? String {
                merges.append((a, b))
            } else {
                throw TokenizerError.invalidJSON(path: path, reason: "model.merges[\(i)] is neither \"a b\" nor [a, b]")
            }
        }
        let sentencePiece = try Self.isSentencePieceJSON(root, model: model)
        let pre: PreTokenizer = sentencePiece ? .gpt2 : try Self.hfPreTokenizer(root["pre_tokenizer"], path: path)

        var bosText: String?, eosText: String?, padText: String?
        var addBos = false
        if let cdata = config,
           let cfg = (try? JSONSerialization.jsonObject(with: cdata)) as? [String: Any] {
            // Tokens may be plain strings or AddedToken objects {"content": ...}.
            func tokenString(_ v: Any?) -> String? {
                if let s = v as? String { return s }
                return (v as? [String: Any])?["content"] as? String
            }
            bosText = tokenString(cfg["bos_token"])
            eosText = tokenString(cfg["eos_token"])
            padText = tokenString(cfg["pad_token"])
            addBos = cfg["add_bos_token"] as? Bool ?? false
        }
        let index = Dictionary(tokens.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        let bos = bosText.flatMap { index[$0] }, pad = padText.flatMap { index[$0] }
        if sentencePiece {
            if let unk = (model["unk_token"] as? String).flatMap({ index[$0] }) { types[unk] = .unknown }
            for (i, t) in tokens.enumerated() where types[i] == .normal && SentencePiece.byteValue(Array(t.utf8)) != nil {
                types[i] = .byte
            }
            try self.init(sentencePieceTokens: tokens, scores: Self.scoresFromMerges(tokens, merges), types: types,
                          bosId: bos, eosId: eosText.flatMap { index[$0] }, padId: pad, addBosToken: config == nil || addBos)
        } else {
            try self.init(tokens: tokens, types: types, merges: merges, preTokenizer: pre, bosId: bos,
                          eosId: index[eosText ?? "<|endoftext|>"], padId: pad, addBosToken: addBos,
                          ignoreMerges: model["ignore_merges"] as? Bool ?? false)
        }
    }
}
