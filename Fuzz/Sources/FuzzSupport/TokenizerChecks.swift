import ModelFormats

/// What a run does with a tokenizer read from a file: encode a prompt with and without special
/// tokens, decode the result whole and token by token. An arbitrary vocabulary need not round-trip,
/// but every id encode gives must decode.
public func exerciseTokenizer(_ tokenizer: Tokenizer, text: String = "Hello <|im_start|>user\nwörld 12345 🙂<|im_end|>") {
    for parseSpecial in [true, false] {
        let ids = tokenizer.encode(text, parseSpecial: parseSpecial)
        precondition((try? tokenizer.decode(ids)) != nil, "encode gave an id outside the vocabulary")
        var stream = tokenizer.makeStreamingDecoder()
        for id in ids { _ = try! stream.append(id) }
        _ = stream.finish()
    }
    for id in [0, tokenizer.vocabSize - 1, tokenizer.bosId, tokenizer.eosId, tokenizer.padId].compactMap({ $0 }) {
        _ = (tokenizer.tokenText(id), tokenizer.tokenType(id), tokenizer.isSpecial(id))
    }
}
