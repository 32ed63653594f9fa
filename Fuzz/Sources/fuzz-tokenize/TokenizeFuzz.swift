import Foundation
import FuzzSupport
@testable import ModelFormats

/// Text from outside (prompts, `ppl --file`, chat input) through every pre-tokenizer, a fixed
/// byte-level BPE with ChatML control tokens (merges, special-token matching) and a fixed
/// SentencePiece vocabulary (score merges, byte fallback). Text of valid UTF-8 must come back
/// exactly from `decode`, whole and streamed (SentencePiece: without special tokens, and unless the
/// text holds U+2581 itself, which decodes as a space there as in llama.cpp).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTokenize(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    for pre in PreTokenizer.allCases {
        let pieces = pre.split(Substring(text))
        precondition(Array(pieces.joined()) == Array(text.utf8), "pre-tokenizer pieces do not concatenate to the text")
    }
    for parseSpecial in [true, false] {
        let ids = fixedTokenizer.encode(text, parseSpecial: parseSpecial)
        precondition((try? fixedTokenizer.decode(ids)) == text, "decode(encode(text)) differs from the text")
        var stream = fixedTokenizer.makeStreamingDecoder()
        var streamed = ""
        for id in ids { streamed += try! stream.append(id) }
        streamed += stream.finish()
        precondition(streamed == text, "streamed decode differs from the text")
    }
    let spmIds = fixedSentencePiece.encode(text, parseSpecial: true)
    precondition(spmIds.allSatisfy { (0..<fixedSentencePiece.vocabSize).contains($0) })
    if !text.unicodeScalars.contains("\u{2581}") {
        let ids = fixedSentencePiece.encode(text, parseSpecial: false)
        precondition((try? fixedSentencePiece.decode(ids)) == text, "SentencePiece decode(encode(text)) differs from the text")
    }
    return 0
}

/// `<unk>`, `<s>`, `</s>`, all 256 byte tokens, and a few pieces with scores.
let fixedSentencePiece: Tokenizer = {
    var tokens = ["<unk>", "<s>", "</s>"]
    var types: [Tokenizer.TokenType] = [.unknown, .control, .control]
    for b in 0..<256 {
        tokens.append("<0x" + String(format: "%02X", b) + ">")
        types.append(.byte)
    }
    let pieces = ["▁", "a", "b", "e", "h", "l", "o", "▁a", "ab", "▁h", "he", "ll", "hell", "▁hello", "▁▁", "é", "1", "12"]
    for p in pieces { tokens.append(p); types.append(.normal) }
    let scores = tokens.indices.map { -Float($0 % 7) }
    return try! Tokenizer(sentencePieceTokens: tokens, scores: scores, types: types, bosId: 1, eosId: 2)
}()

/// Every byte, a few merges across letters, digits, spaces and a multi-byte character, and ChatML tokens.
let fixedTokenizer: Tokenizer = {
    var tokens = (0..<256).map { String(ByteLevel.byteToScalar[$0]) }
    var types = [Tokenizer.TokenType](repeating: .normal, count: 256)
    let merges: [(String, String)] = [("h", "e"), ("l", "l"), ("he", "ll"), ("hell", "o"), ("Ġ", "w"), ("Ġw", "o"),
                                      ("1", "2"), ("Ġ", "Ġ"), ("ĠĠ", "Ġ"), ("Ã", "¶"), ("'", "s"), ("Ċ", "Ċ")]
    for (a, b) in merges { tokens.append(a + b); types.append(.normal) }
    for special in ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool>"] {
        tokens.append(special)
        types.append(special == "<tool>" ? .userDefined : .control)
    }
    return try! Tokenizer(tokens: tokens, types: types, merges: merges, preTokenizer: .gpt2IsolatedDigits,
                          bosId: tokens.count - 3, eosId: tokens.count - 2)
}()
