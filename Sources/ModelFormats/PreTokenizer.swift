/// Splits text into the pieces that BPE merges never cross.
///
/// `.gpt2` is GPT-2's rule `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
/// `.gpt2IsolatedDigits` first isolates every `\p{N}` character and applies the GPT-2 rule to the
/// text between them. That is what llama.cpp does for `tokenizer.ggml.pre` = smollm (and
/// starcoder, refact, …) and what SmolLM2's tokenizer.json does with
/// `Sequence[Digits(individual_digits), ByteLevel(use_regex)]`.
///
/// Hand-written over Unicode scalars (no regex engine): classification is a table lookup for
/// ASCII and a general-category lookup otherwise.
public enum PreTokenizer: String, Sendable {
    case gpt2
    case gpt2IsolatedDigits

    /// The rule llama.cpp uses for a `tokenizer.ggml.pre` value, nil if not supported here.
    public init?(ggmlPre: String) {
        switch ggmlPre {
        case "gpt2", "mpt", "olmo", "jais", "default": self = .gpt2
        case "smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva": self = .gpt2IsolatedDigits
        default: return nil
        }
    }

    enum CharClass: UInt8 { case letter, number, space, other }

    private static let asciiClass: [CharClass] = (0..<128).map { v -> CharClass in
        let s = Unicode.Scalar(UInt8(v))
        if s.properties.isWhitespace { return .space }
        if (65...90).contains(v) || (97...122).contains(v) { return .letter }
        if (48...57).contains(v) { return .number }
        return .other
    }

    @inline(__always)
    static func classify(_ s: Unicode.Scalar) -> CharClass {
        if s.value < 128 { return asciiClass[Int(s.value)] }
        let p = s.properties
        if p.isWhitespace { return .space }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return .other
        }
    }

    /// Splits `text` and returns the pieces as UTF-8 byte arrays, in order. Concatenating the
    /// pieces gives back the text's bytes exactly.
    public func split(_ text: Substring) -> [[UInt8]] {
        var scalars: [Unicode.Scalar] = []
        scalars.reserveCapacity(text.utf8.count)
        scalars.append(contentsOf: text.unicodeScalars)
        let classes = scalars.map(Self.classify)
        var pieces: [[UInt8]] = []
        func emit(_ lo: Int, _ hi: Int) {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(hi - lo)
            for s in scalars[lo..<hi] { bytes.append(contentsOf: UTF8.encode(s)!) }
            pieces.append(bytes)
        }
        switch self {
        case .gpt2:
            Self.gpt2(scalars, classes, 0, scalars.count, emit)
        case .gpt2IsolatedDigits:
            var start = 0
            for i in 0..<scalars.count where classes[i] == .number {
                Self.gpt2(scalars, classes, start, i, emit)
                emit(i, i + 1)
                start = i + 1
            }
            Self.gpt2(scalars, classes, start, scalars.count, emit)
        }
        return pieces
    }

    /// The GPT-2 rule on `s[lo..<hi]`, alternatives tried in the regex's order at each position.
    private static func gpt2(_ s: [Unicode.Scalar], _ c: [CharClass], _ lo: Int, _ hi: Int, _ emit: (Int, Int) -> Void) {
        var i = lo
        while i < hi {
            // 's 't 're 've 'm 'll 'd (case-sensitive, as in the original pattern)
            if s[i] == "'", i + 1 < hi {
                let a = s[i + 1]
                if a == "s" || a == "t" || a == "m" || a == "d" { emit(i, i + 2); i += 2; continue }
                if i + 2 < hi {
                    let b = s[i + 2]
                    if (a == "r" && b == "e") || (a == "v" && b == "e") || (a == "l" && b == "l") {
                        emit(i, i + 3); i += 3; continue
                    }
                }
            }
            // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional plain space, then a run of one class.
            var j = i
            if s[i] == " ", i + 1 < hi, c[i + 1] != .space { j = i + 1 }
            let k = c[j]
            if k != .space {
                var e = j + 1
                while e < hi, c[e] == k { e += 1 }
                emit(i, e); i = e; continue
            }
            // `\s+(?!\S)` then `\s+`: a whitespace run, leaving its last character to prefix
            // the following word when one follows.
            var e = i + 1
            while e < hi, c[e] == .space { e += 1 }
            if e < hi, e - i >= 2 { e -= 1 }
            emit(i, e); i = e
        }
    }
}
