import Foundation

/// A GGUF / Hugging Face tokenizer: byte-level BPE (GGUF `gpt2`, `BPE` + `ByteLevel` in
/// `tokenizer.json`) or SentencePiece (GGUF `llama`: scores, byte fallback, `▁` for spaces), with
/// the special-token handling llama.cpp applies to both.
///
/// BPE: bytes whose single-byte token is missing from the vocabulary (SmolLM2 lacks a few control
/// characters and the 0xF1/0xF2 lead bytes) are dropped, as both llama.cpp and HF tokenizers do,
/// so `decode(encode(s)) == s` holds for every string made of bytes the vocabulary covers
/// (`canEncode(byte:)`).
public final class Tokenizer: @unchecked Sendable {
    /// Token kinds as numbered in `tokenizer.ggml.token_type`.
    public enum TokenType: Int, Sendable {
        case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
    }

    /// How a text fragment becomes ids.
    public enum Model: Sendable, Equatable {
        /// Byte-level BPE: merges by rank over a pre-tokenizer's pieces.
        case bytePairs
        /// SentencePiece as llama.cpp runs it: spaces become `▁`, adjacent symbols merge while their
        /// concatenation is a token, highest score first; leftovers become `<0xXX>` byte tokens.
        case sentencePiece
    }

    public let model: Model
    public let vocabSize: Int
    public let bosId: Int?
    public let eosId: Int?
    public let padId: Int?
    /// Whether the model expects BOS prepended (`tokenizer.ggml.add_bos_token`); see `encode(_:addSpecial:parseSpecial:)`.
    public let addBosToken: Bool
    /// Whether the model expects EOS appended (`tokenizer.ggml.add_eos_token`).
    public let addEosToken: Bool
    /// SentencePiece: a space is put before text that starts the input or follows a special token
    /// (`tokenizer.ggml.add_space_prefix`, default on), and decoding drops it again.
    public let addSpacePrefix: Bool
    public let preTokenizer: PreTokenizer
    /// BPE: a pre-token that is itself a token is used whole, merges skipped (llama.cpp's `ignore_merges`).
    public let ignoreMerges: Bool

    let tokens: [String]
    let types: [TokenType]
    let tokenBytes: [[UInt8]]
    let vocab: [String: Int]
    /// id of the single-byte token for each byte, -1 when the vocabulary lacks it.
    let byteToId: [Int32]
    /// BPE: (left id << 32 | right id) → (rank, merged id)
    let merges: [UInt64: (rank: Int32, id: Int32)]
    /// SentencePiece: token bytes → (id, score) for every token (llama.cpp merges into any of them).
    let pieces: [[UInt8]: (id: Int32, score: Float)]
    /// Tokens split out of the input before tokenizing (control, user-defined, unknown), grouped by first byte.
    let specialByFirstByte: [UInt8: [(bytes: [UInt8], id: Int)]]

    let cacheLock = NSLock()
    var cache: [[UInt8]: [Int32]] = [:]

    /// A byte-level BPE tokenizer.
    /// - Parameters:
    ///   - tokens: token strings in byte-level form (control/user-defined tokens as raw text).
    ///   - merges: merge rules in priority order (first = applied first).
    public convenience init(tokens: [String], types: [TokenType], merges: [(String, String)], preTokenizer: PreTokenizer,
                            bosId: Int?, eosId: Int?, padId: Int? = nil, addBosToken: Bool = false,
                            addEosToken: Bool = false, ignoreMerges: Bool = false) throws {
        try self.init(model: .bytePairs, tokens: tokens, types: types, merges: merges, scores: [], preTokenizer: preTokenizer,
                      bosId: bosId, eosId: eosId, padId: padId, addBosToken: addBosToken, addEosToken: addEosToken,
                      addSpacePrefix: false, ignoreMerges: ignoreMerges)
    }

    /// A SentencePiece tokenizer: `tokens` as stored (with `▁` for spaces, `<0xXX>` byte tokens), one score each.
    public convenience init(sentencePieceTokens tokens: [String], scores: [Float], types: [TokenType],
                            bosId: Int?, eosId: Int?, padId: Int? = nil, addBosToken: Bool = true,
                            addEosToken: Bool = false, addSpacePrefix: Bool = true) throws {
        guard scores.count == tokens.count else {
            throw TokenizerError.invalidVocabulary("\(tokens.count) tokens but \(scores.count) scores")
        }
        try self.init(model: .sentencePiece, tokens: tokens, types: types, merges: [], scores: scores, preTokenizer: .gpt2,
                      bosId: bosId, eosId: eosId, padId: padId, addBosToken: addBosToken, addEosToken: addEosToken,
                      addSpacePrefix: addSpacePrefix, ignoreMerges: false)
    }

    private init(model: Model, tokens: [String], types: [TokenType], merges: [(String, String)], scores: [Float],
                 preTokenizer: PreTokenizer, bosId: Int?, eosId: Int?, padId: Int?, addBosToken: Bool, addEosToken: Bool,
                 addSpacePrefix: Bool, ignoreMerges: Bool) throws {
        guard !tokens.isEmpty, tokens.count == types.count else {
            throw TokenizerError.invalidVocabulary("\(tokens.count) tokens but \(types.count) token types")
        }
        for (name, id) in [("bos", bosId), ("eos", eosId), ("pad", padId)] {
            if let id, !(0..<tokens.count).contains(id) {
                throw TokenizerError.invalidVocabulary("\(name) id \(id) is outside the vocabulary (0..<\(tokens.count))")
            }
        }
        self.model = model
        self.tokens = tokens
        self.types = types
        vocabSize = tokens.count
        self.bosId = bosId
        self.eosId = eosId
        self.padId = padId
        self.addBosToken = addBosToken
        self.addEosToken = addEosToken
        self.addSpacePrefix = addSpacePrefix
        self.preTokenizer = preTokenizer
        self.ignoreMerges = ignoreMerges

        var vocab: [String: Int] = [:]
        vocab.reserveCapacity(tokens.count)
        for (i, t) in tokens.enumerated() where vocab[t] == nil { vocab[t] = i }
        self.vocab = vocab

        var bytes: [[UInt8]] = []
        bytes.reserveCapacity(tokens.count)
        var specials: [UInt8: [(bytes: [UInt8], id: Int)]] = [:]
        for (i, t) in tokens.enumerated() {
            let isText = types[i] == .control || types[i] == .userDefined || types[i] == .unknown
            switch model {
            case .bytePairs: bytes.append(isText ? Array(t.utf8) : (ByteLevel.decode(t) ?? Array(t.utf8)))
            case .sentencePiece: bytes.append(SentencePiece.pieceBytes(t, type: types[i]))
            }
            if isText, let first = t.utf8.first { specials[first, default: []].append((Array(t.utf8), i)) }
        }
        tokenBytes = bytes
        specialByFirstByte = specials.mapValues { $0.sorted { $0.bytes.count > $1.bytes.count } }

        switch model {
        case .bytePairs:
            byteToId = ByteLevel.byteTokenIds(vocab: vocab, types: types)
            self.merges = Self.mergeTable(merges, vocab: vocab)
            pieces = [:]
        case .sentencePiece:
            byteToId = SentencePiece.byteTokenIds(vocab: vocab)
            self.merges = [:]
            var p: [[UInt8]: (id: Int32, score: Float)] = [:]
            p.reserveCapacity(tokens.count)
            for (i, t) in tokens.enumerated() where p[Array(t.utf8)] == nil { p[Array(t.utf8)] = (Int32(i), scores[i]) }
            pieces = p
        }
    }

    private static func mergeTable(_ merges: [(String, String)], vocab: [String: Int]) -> [UInt64: (rank: Int32, id: Int32)] {
        var m: [UInt64: (rank: Int32, id: Int32)] = [:]
        m.reserveCapacity(merges.count)
        for (rank, (a, b)) in merges.enumerated() {
            // Rules whose parts or result are not in the vocabulary can never fire; skip them.
            guard let ia = vocab[a], let ib = vocab[b], let im = vocab[a + b] else { continue }
            let key = UInt64(ia) << 32 | UInt64(ib)
            if m[key] == nil { m[key] = (Int32(rank), Int32(im)) }
        }
        return m
    }

    // MARK: Lookup

    public func tokenText(_ id: Int) -> String? { (0..<vocabSize).contains(id) ? tokens[id] : nil }
    public func tokenType(_ id: Int) -> TokenType? { (0..<vocabSize).contains(id) ? types[id] : nil }
    public func tokenId(for text: String) -> Int? { vocab[text] }
    /// Control tokens (`<|im_start|>`, `<|endoftext|>`, …).
    public func isSpecial(_ id: Int) -> Bool { tokenType(id) == .control }
    public var imStartId: Int? { vocab["<|im_start|>"] }
    public var imEndId: Int? { vocab["<|im_end|>"] }
    /// Whether byte `b` has a single-byte token, i.e. survives a round trip.
    public func canEncode(byte b: UInt8) -> Bool { byteToId[Int(b)] >= 0 }
    /// The bytes token `id` decodes to on its own (nil when out of range).
    public func pieceBytes(_ id: Int) -> [UInt8]? { (0..<vocabSize).contains(id) ? tokenBytes[id] : nil }

    // MARK: Encode

    /// Tokenizes `text`. With `parseSpecial`, control and unknown token texts in the input
    /// (e.g. `<|im_start|>`) become their single ids; otherwise they are tokenized as plain text.
    /// User-defined tokens always become their ids, as in llama.cpp. BOS is never added; see
    /// `encode(_:addSpecial:parseSpecial:)`.
    public func encode(_ text: String, parseSpecial: Bool = true) -> [Int] {
        var out: [Int] = []
        out.reserveCapacity(text.utf8.count / 3 + 1)
        var previousWasSpecial = true
        for fragment in SpecialTokenSplit.fragments(of: text, specials: specialByFirstByte, types: types, parseSpecial: parseSpecial) {
            switch fragment {
            case let .token(id):
                out.append(id)
                previousWasSpecial = true
            case let .text(t):
                switch model {
                case .bytePairs: encodeBytePairs(t, into: &out)
                case .sentencePiece: encodeSentencePiece(t, spacePrefix: addSpacePrefix && previousWasSpecial, into: &out)
                }
                previousWasSpecial = false
            }
        }
        return out
    }

    /// `encode` with BOS / EOS added as the model asks (`addBosToken`, `addEosToken`) when `addSpecial`,
    /// as llama.cpp's `llama_tokenize(add_special:)`.
    public func encode(_ text: String, addSpecial: Bool, parseSpecial: Bool) -> [Int] {
        var ids = encode(text, parseSpecial: parseSpecial)
        if addSpecial, addBosToken, let bosId { ids.insert(bosId, at: 0) }
        if addSpecial, addEosToken, let eosId { ids.append(eosId) }
        return ids
    }

    // MARK: Decode

    /// Raw bytes of the tokens (special tokens as their text). SentencePiece: the space that
    /// encoding put in front is dropped from the first token, as llama.cpp's detokenizer does.
    public func decodeBytes(_ ids: [Int]) throws -> [UInt8] {
        var out: [UInt8] = []
        for id in ids { try appendBytes(of: id, to: &out) }
        if model == .sentencePiece, addSpacePrefix, let first = ids.first, tokenBytes[first].first == 0x20 {
            out.removeFirst()
        }
        return out
    }

    /// Decoded text; invalid UTF-8 (e.g. a cut multi-byte character) becomes U+FFFD.
    public func decode(_ ids: [Int]) throws -> String {
        String(decoding: try decodeBytes(ids), as: UTF8.self)
    }

    func appendBytes(of id: Int, to out: inout [UInt8]) throws {
        guard id >= 0, id < vocabSize else { throw TokenizerError.idOutOfRange(id, vocabSize) }
        out.append(contentsOf: tokenBytes[id])
    }

    /// A decoder for generated tokens that only ever returns whole characters. It continues text,
    /// so (unlike `decode`) it keeps a SentencePiece token's leading space.
    public func makeStreamingDecoder() -> StreamingDecoder { StreamingDecoder(tokenizer: self) }
}
