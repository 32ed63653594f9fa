/// Turns tokens into text one at a time during generation. A token may end in the middle of a
/// multi-byte UTF-8 character (emoji are often split over 2–4 byte tokens); those bytes are
/// held back until the character is complete, so the concatenated outputs equal
/// `tokenizer.decode(allIds)` (except for the leading space a SentencePiece `decode` drops: the
/// stream continues a text, so it keeps every token's space).
public struct StreamingDecoder {
    public let tokenizer: Tokenizer
    private var pending: [UInt8] = []

    public init(tokenizer: Tokenizer) { self.tokenizer = tokenizer }

    /// Adds one token and returns the text completed by it (possibly empty).
    public mutating func append(_ id: Int) throws -> String {
        try tokenizer.appendBytes(of: id, to: &pending)
        let cut = Self.completePrefixLength(pending)
        guard cut > 0 else { return "" }
        let text = String(decoding: pending[0..<cut], as: UTF8.self)
        pending.removeFirst(cut)
        return text
    }

    /// Returns whatever is held back (an incomplete character becomes U+FFFD) and resets.
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }

    /// Whether bytes are being held back.
    public var hasPending: Bool { !pending.isEmpty }

    /// Length of the longest prefix that does not end inside a UTF-8 sequence that could still
    /// be completed by more bytes.
    static func completePrefixLength(_ b: [UInt8]) -> Int {
        let n = b.count
        var i = n - 1
        var continuation = 0
        while i >= 0, continuation < 3, b[i] & 0xC0 == 0x80 { i -= 1; continuation += 1 }
        guard i >= 0 else { return n }
        let lead = b[i]
        let need: Int
        switch lead {
        case 0xC2...0xDF: need = 2
        case 0xE0...0xEF: need = 3
        case 0xF0...0xF4: need = 4
        default: return n  // ASCII or an invalid byte: nothing to wait for
        }
        return n - i < need ? i : n
    }
}
