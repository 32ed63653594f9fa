/// Splits text into the pieces that BPE merges never cross: one named rule per family of
/// `tokenizer.ggml.pre` values (llama.cpp keeps the regexes in its source, not in the file).
///
/// - `.gpt2`: GPT-2's `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
/// - `.gpt2IsolatedDigits`: every `\p{N}` character alone, the GPT-2 rule between them (llama.cpp's
///   smollm, starcoder, refact, …; SmolLM2's `Sequence[Digits(individual_digits), ByteLevel]`).
/// - `.llama3`: Llama 3's `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
///   ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`.
/// - `.qwen2`: the same with `\p{N}` (single digits) in place of `\p{N}{1,3}`.
///
/// Hand-written scanners over Unicode scalars (no regex engine): classification is a table lookup
/// for ASCII and a general-category lookup otherwise.
public enum PreTokenizer: String, Sendable, CaseIterable {
    case gpt2
    case gpt2IsolatedDigits
    case llama3
    case qwen2

    /// `tokenizer.ggml.pre` values and the rule llama.cpp applies for each.
    public static let ggmlPreValues: [(name: String, rule: PreTokenizer)] = [
        ("default", .gpt2), ("gpt2", .gpt2), ("gpt-2", .gpt2), ("mpt", .gpt2), ("olmo", .gpt2), ("jais", .gpt2),
        ("phi-2", .gpt2),
        ("smollm", .gpt2IsolatedDigits), ("starcoder", .gpt2IsolatedDigits), ("refact", .gpt2IsolatedDigits),
        ("command-r", .gpt2IsolatedDigits), ("codeshell", .gpt2IsolatedDigits), ("exaone", .gpt2IsolatedDigits),
        ("minerva", .gpt2IsolatedDigits),
        ("llama3", .llama3), ("llama-v3", .llama3), ("llama-bpe", .llama3), ("falcon3", .llama3), ("falcon-h1", .llama3),
        ("pixtral", .llama3), ("midm-2.0", .llama3), ("lfm2", .llama3), ("dbrx", .llama3), ("smaug-bpe", .llama3),
        ("qwen2", .qwen2), ("stablelm2", .qwen2), ("deepseek-r1-qwen", .qwen2),
    ]

    /// The rule llama.cpp uses for a `tokenizer.ggml.pre` value, nil if not supported here.
    public init?(ggmlPre: String) {
        guard let hit = Self.ggmlPreValues.first(where: { $0.name == ggmlPre }) else { return nil }
        self = hit.rule
    }

    /// The `tokenizer.ggml.pre` values llama.cpp treats as Llama 3 proper: a pre-token that is a
    /// token is used whole (`ignore_merges`) and BOS is added unless the file says otherwise.
    public static let llama3Family: Set<String> = ["llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral",
                                                    "midm-2.0", "lfm2"]

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
        let scan = PreTokenScan(s: scalars, c: classes)
        switch self {
        case .gpt2:
            scan.gpt2(0, scalars.count, emit)
        case .gpt2IsolatedDigits:
            var start = 0
            for i in 0..<scalars.count where classes[i] == .number {
                scan.gpt2(start, i, emit)
                emit(i, i + 1)
                start = i + 1
            }
            scan.gpt2(start, scalars.count, emit)
        case .llama3:
            scan.llama3(0, scalars.count, maxDigits: 3, emit)
        case .qwen2:
            scan.llama3(0, scalars.count, maxDigits: 1, emit)
        }
        return pieces
    }
}
