/// GPT-2's reversible byte ↔ character mapping: printable bytes map to themselves, the others
/// to U+0100… so every byte sequence becomes a string of visible characters (a space is "Ġ").
enum ByteLevel {
    /// `byteToScalar[b]` is the character standing for byte `b`.
    static let byteToScalar: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            let printable = (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b)
            if printable {
                table[b] = Unicode.Scalar(UInt32(b))!
            } else {
                table[b] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return table
    }()

    /// Inverse of `byteToScalar`, keyed by scalar value.
    static let scalarToByte: [UInt32: UInt8] = {
        var m: [UInt32: UInt8] = [:]
        for (b, s) in byteToScalar.enumerated() { m[s.value] = UInt8(b) }
        return m
    }()

    /// Bytes a byte-level token string stands for, or nil if it contains a character outside
    /// the mapping (then the token is not byte-level, e.g. an added token stored as raw text).
    static func decode(_ token: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(token.unicodeScalars.count)
        for s in token.unicodeScalars {
            guard let b = scalarToByte[s.value] else { return nil }
            out.append(b)
        }
        return out
    }

    static func encode<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var s = String.UnicodeScalarView()
        for b in bytes { s.append(byteToScalar[Int(b)]) }
        return String(s)
    }

    /// The single-byte token of each byte (-1 where the vocabulary has none; control tokens never count).
    static func byteTokenIds(vocab: [String: Int], types: [Tokenizer.TokenType]) -> [Int32] {
        (0..<256).map { b -> Int32 in
            guard let id = vocab[String(byteToScalar[b])], types[id] != .control else { return -1 }
            return Int32(id)
        }
    }
}
