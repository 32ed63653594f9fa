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
        case let .unsupportedModel(m): return "unsupported tokenizer model '\(m)' (only byte-level BPE / gpt2 is supported)"
        case let .unsupportedPreTokenizer(p): return "unsupported pre-tokenizer '\(p)'"
        case let .invalidVocabulary(r): return "invalid tokenizer vocabulary: \(r)"
        case let .invalidJSON(p, r): return "\(p): \(r)"
        }
    }
}

extension TokenizerError: LocalizedError { public var errorDescription: String? { description } }

/// GPT-2 style byte-level BPE tokenizer (the `gpt2` tokenizer model of GGUF, `BPE` + `ByteLevel`
/// in Hugging Face `tokenizer.json`).
///
/// Bytes whose single-byte token is missing from the vocabulary (SmolLM2 lacks a few control
/// characters and the 0xF1/0xF2 lead bytes) are dropped, as both llama.cpp and HF tokenizers do,
/// so `decode(encode(s)) == s` holds for every string made of bytes the vocabulary covers
/// (`canEncode(byte:)`).
public final class Tokenizer: @unchecked Sendable {
    /// Token kinds as numbered in `tokenizer.ggml.token_type`.
    public enum TokenType: Int, Sendable {
        case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
    }

    public let vocabSize: Int
    public let bosId: Int?
    public let eosId: Int?
    public let padId: Int?
    /// Whether the model expects BOS prepended (`tokenizer.ggml.add_bos_token`); `encode` never adds it.
    public let addBosToken: Bool
    public let preTokenizer: PreTokenizer

    private let tokens: [String]
    private let types: [TokenType]
    private let tokenBytes: [[UInt8]]
    private let vocab: [String: Int]
    /// id of the single-byte token for each byte, -1 when the vocabulary lacks it.
    private let byteToId: [Int32]
    /// (left id << 32 | right id) → (rank, merged id)
    private let merges: [UInt64: (rank: Int32, id: Int32)]
    /// Tokens matched verbatim in the input when `parseSpecial` is on (control and user-defined),
    /// grouped by first byte, longest first.
    private let specialByFirstByte: [UInt8: [(bytes: [UInt8], id: Int)]]

    private let cacheLock = NSLock()
    private var cache: [[UInt8]: [Int32]] = [:]

    /// - Parameters:
    ///   - tokens: token strings in byte-level form (control/user-defined tokens as raw text).
    ///   - merges: merge rules in priority order (first = applied first).
    public init(tokens: [String], types: [TokenType], merges: [(String, String)], preTokenizer: PreTokenizer,
                bosId: Int?, eosId: Int?, padId: Int? = nil, addBosToken: Bool = false) throws {
        guard !tokens.isEmpty, tokens.count == types.count else {
            throw TokenizerError.invalidVocabulary("\(tokens.count) tokens but \(types.count) token types")
        }
        for (name, id) in [("bos", bosId), ("eos", eosId), ("pad", padId)] {
            if let id, !(0..<tokens.count).contains(id) {
                throw TokenizerError.invalidVocabulary("\(name) id \(id) is outside the vocabulary (0..<\(tokens.count))")
            }
        }
        self.tokens = tokens
        self.types = types
        vocabSize = tokens.count
        self.bosId = bosId
        self.eosId = eosId
        self.padId = padId
        self.addBosToken = addBosToken
        self.preTokenizer = preTokenizer

        var vocab: [String: Int] = [:]
        vocab.reserveCapacity(tokens.count)
        for (i, t) in tokens.enumerated() where vocab[t] == nil { vocab[t] = i }
        self.vocab = vocab

        var bytes: [[UInt8]] = []
        bytes.reserveCapacity(tokens.count)
        var specials: [UInt8: [(bytes: [UInt8], id: Int)]] = [:]
        for (i, t) in tokens.enumerated() {
            let isText = types[i] == .control || types[i] == .userDefined
            bytes.append(isText ? Array(t.utf8) : (ByteLevel.decode(t) ?? Array(t.utf8)))
            if isText, let first = t.utf8.first { specials[first, default: []].append((Array(t.utf8), i)) }
        }
        tokenBytes = bytes
        specialByFirstByte = specials.mapValues { $0.sorted { $0.bytes.count > $1.bytes.count } }

        var b2i = [Int32](repeating: -1, count: 256)
        for b in 0..<256 {
            if let id = vocab[String(ByteLevel.byteToScalar[b])], types[id] != .control { b2i[b] = Int32(id) }
        }
        byteToId = b2i

        var m: [UInt64: (rank: Int32, id: Int32)] = [:]
        m.reserveCapacity(merges.count)
        for (rank, (a, b)) in merges.enumerated() {
            // Rules whose parts or result are not in the vocabulary can never fire; skip them.
            guard let ia = vocab[a], let ib = vocab[b], let im = vocab[a + b] else { continue }
            let key = UInt64(ia) << 32 | UInt64(ib)
            if m[key] == nil { m[key] = (Int32(rank), Int32(im)) }
        }
        self.merges = m
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

    // MARK: Encode

    /// Tokenizes `text`. With `parseSpecial`, control and user-defined token texts in the input
    /// (e.g. `<|im_start|>`) become their single ids; otherwise they are tokenized as plain text.
    /// BOS is never added; see `addBosToken`.
    public func encode(_ text: String, parseSpecial: Bool = true) -> [Int] {
        var out: [Int] = []
        out.reserveCapacity(text.utf8.count / 3 + 1)
        guard parseSpecial, !specialByFirstByte.isEmpty else {
            encodePlain(Substring(text), into: &out)
            return out
        }
        let utf8 = Array(text.utf8)
        var segStart = 0
        var i = 0
        while i < utf8.count {
            if let cands = specialByFirstByte[utf8[i]],
               let hit = cands.first(where: { i + $0.bytes.count <= utf8.count && utf8[i..<(i + $0.bytes.count)].elementsEqual($0.bytes) }) {
                if segStart < i { encodePlain(Self.substring(utf8[segStart..<i]), into: &out) }
                out.append(hit.id)
                i += hit.bytes.count
                segStart = i
            } else {
                i += 1
            }
        }
        if segStart < utf8.count { encodePlain(Self.substring(utf8[segStart..<utf8.count]), into: &out) }
        return out
    }

    /// Special tokens are ASCII-delimited and start with a full character, so segments between
    /// them are valid UTF-8.
    private static func substring(_ bytes: ArraySlice<UInt8>) -> Substring {
        Substring(String(decoding: bytes, as: UTF8.self))
    }

    private func encodePlain(_ text: Substring, into out: inout [Int]) {
        for piece in preTokenizer.split(text) {
            for id in bpe(piece) { out.append(Int(id)) }
        }
    }

    /// Byte-pair merges over one pre-token: repeatedly merge the adjacent pair with the lowest
    /// rank (leftmost on ties), as HF tokenizers and llama.cpp do.
    private func bpe(_ piece: [UInt8]) -> [Int32] {
        cacheLock.lock()
        if let hit = cache[piece] { cacheLock.unlock(); return hit }
        cacheLock.unlock()

        var syms: [Int32] = []
        syms.reserveCapacity(piece.count)
        for b in piece where byteToId[Int(b)] >= 0 { syms.append(byteToId[Int(b)]) }
        if syms.count > 1 { syms = merged(syms) }

        cacheLock.lock()
        if cache.count > 50_000 { cache.removeAll(keepingCapacity: true) }
        cache[piece] = syms
        cacheLock.unlock()
        return syms
    }

    /// The merges in that order, from a heap of adjacent pairs (rank, then position) over symbols
    /// linked in place: a pre-token of thousands of letters costs n log n, not n² as rescanning did.
    private func merged(_ initial: [Int32]) -> [Int32] {
        var syms = initial  // -1: absorbed into the symbol on its left
        let n = syms.count
        var next = Array(1...n), prev = Array(-1..<(n - 1))  // n, -1: none
        var heap = PairHeap()
        func push(_ i: Int) {
            let j = next[i]
            guard j < n, let m = merges[UInt64(UInt32(syms[i])) << 32 | UInt64(UInt32(syms[j]))] else { return }
            heap.push(PairHeap.Pair(rank: m.rank, left: Int32(i), leftId: syms[i], rightId: syms[j], merged: m.id))
        }
        for i in 0..<(n - 1) { push(i) }
        while let p = heap.pop() {
            let i = Int(p.left), j = next[i]
            // Stale when either side has merged since: a symbol's id changes with each merge it takes part in.
            guard syms[i] == p.leftId, j < n, syms[j] == p.rightId else { continue }
            syms[i] = p.merged
            syms[j] = -1
            next[i] = next[j]
            if next[j] < n { prev[next[j]] = i }
            if prev[i] >= 0 { push(prev[i]) }
            push(i)
        }
        return syms.filter { $0 >= 0 }
    }

    // MARK: Decode

    /// Raw bytes of the tokens (special tokens as their text).
    public func decodeBytes(_ ids: [Int]) throws -> [UInt8] {
        var out: [UInt8] = []
        for id in ids { try appendBytes(of: id, to: &out) }
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

    /// A decoder for generated tokens that only ever returns whole characters.
    public func makeStreamingDecoder() -> StreamingDecoder { StreamingDecoder(tokenizer: self) }
}
