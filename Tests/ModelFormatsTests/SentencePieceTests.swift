import XCTest
@testable import ModelFormats

/// SentencePiece and special-token splitting on vocabularies small enough to work out by hand.
final class SentencePieceTests: XCTestCase {
    /// `<unk>`, `<s>`, `</s>`, two byte tokens, then normal pieces with the given scores.
    private func spm(_ pieces: [(String, Float)], addSpacePrefix: Bool = true) throws -> Tokenizer {
        let head: [(String, Float, Tokenizer.TokenType)] = [("<unk>", 0, .unknown), ("<s>", 0, .control), ("</s>", 0, .control),
                                                            ("<0xC3>", 0, .byte), ("<0xA9>", 0, .byte)]
        let all = head + pieces.map { ($0.0, $0.1, Tokenizer.TokenType.normal) }
        return try Tokenizer(sentencePieceTokens: all.map(\.0), scores: all.map(\.1), types: all.map(\.2),
                             bosId: 1, eosId: 2, addSpacePrefix: addSpacePrefix)
    }

    func testHighestScoreMergesFirst() throws {
        // "ab" becomes "▁ab": symbols ▁ a b; candidates ▁a and ab. ("▁ab" is no token.)
        let aFirst = try spm([("▁", -1), ("a", -1), ("b", -1), ("▁a", -2), ("ab", -3)])
        XCTAssertEqual(aFirst.encode("ab").map { aFirst.tokenText($0)! }, ["▁a", "b"])
        let bFirst = try spm([("▁", -1), ("a", -1), ("b", -1), ("▁a", -3), ("ab", -2)])
        XCTAssertEqual(bFirst.encode("ab").map { bFirst.tokenText($0)! }, ["▁", "ab"])
        // Equal scores: the leftmost pair.
        let tie = try spm([("▁", -1), ("a", -1), ("b", -1), ("▁a", -2), ("ab", -2)])
        XCTAssertEqual(tie.encode("ab").map { tie.tokenText($0)! }, ["▁a", "b"])
    }

    func testSpacesBecomeMarkersAndDecodeDropsThePrefix() throws {
        let t = try spm([("▁", -1), ("a", -1), ("b", -1), ("▁a", -2), ("▁b", -2)])
        let ids = t.encode("a b")
        XCTAssertEqual(ids.map { t.tokenText($0)! }, ["▁a", "▁b"])
        XCTAssertEqual(try t.decode(ids), "a b")
        // Without the prefix option no marker is added in front.
        let bare = try spm([("▁", -1), ("a", -1), ("b", -1), ("▁b", -2)], addSpacePrefix: false)
        XCTAssertEqual(bare.encode("a b").map { bare.tokenText($0)! }, ["a", "▁b"])
        XCTAssertEqual(try bare.decode(bare.encode("a b")), "a b")
    }

    func testByteFallbackForUnknownCharacters() throws {
        let t = try spm([("▁", -1), ("a", -1)])
        // "é" (C3 A9) is no piece: its bytes' tokens.
        XCTAssertEqual(t.encode("aé").map { t.tokenText($0)! }, ["▁", "a", "<0xC3>", "<0xA9>"])
        XCTAssertEqual(try t.decode(t.encode("aé")), "aé")
    }

    func testSpecialTokensAndPrefixAfterThem() throws {
        let t = try spm([("▁", -1), ("a", -1), ("▁a", -2)])
        // A special token is cut out with parseSpecial; the text after it gets the space prefix again.
        XCTAssertEqual(t.encode("a</s>a", parseSpecial: true).map { t.tokenText($0)! }, ["▁a", "</s>", "▁a"])
        XCTAssertFalse(t.encode("a</s>a", parseSpecial: false).contains(2))
        XCTAssertEqual(t.encode("a", addSpecial: true, parseSpecial: false), [1, t.tokenId(for: "▁a")!])
        XCTAssertEqual(t.model, .sentencePiece)
        XCTAssertTrue(t.addBosToken)
    }

    func testScoresMustMatchTokens() {
        XCTAssertThrowsError(try Tokenizer(sentencePieceTokens: ["a", "b"], scores: [0], types: [.normal, .normal],
                                           bosId: nil, eosId: nil)) { e in
            XCTAssertEqual(e as? TokenizerError, .invalidVocabulary("2 tokens but 1 scores"))
        }
    }

    /// llama.cpp cuts special tokens out longest first, not left to right: with user-defined "ab"
    /// and "bcd", "abcd" gives a + bcd. User-defined tokens are cut even without parseSpecial.
    func testSpecialTokensLongestFirst() throws {
        let tokens = ["a", "b", "c", "d", "ab", "bcd"]
        let t = try Tokenizer(tokens: tokens, types: [.normal, .normal, .normal, .normal, .userDefined, .userDefined],
                              merges: [], preTokenizer: .gpt2, bosId: nil, eosId: nil)
        XCTAssertEqual(t.encode("abcd", parseSpecial: false), [0, 5])
        XCTAssertEqual(t.encode("abab", parseSpecial: false), [4, 4])
        XCTAssertEqual(t.encode("cab d", parseSpecial: false).prefix(2), [2, 4])
    }

    /// llama-bpe's ignore_merges: a pre-token that is a token is taken whole even where the merges
    /// would not build it.
    func testIgnoreMerges() throws {
        let tokens = ["a", "b", "c", "ab", "abc"]
        let merges = [("a", "b")]  // no rule builds "abc"
        let plain = try Tokenizer(tokens: tokens, types: tokens.map { _ in .normal }, merges: merges, preTokenizer: .gpt2,
                                  bosId: nil, eosId: nil)
        XCTAssertEqual(plain.encode("abc"), [3, 2])
        let whole = try Tokenizer(tokens: tokens, types: tokens.map { _ in .normal }, merges: merges, preTokenizer: .gpt2,
                                  bosId: nil, eosId: nil, ignoreMerges: true)
        XCTAssertEqual(whole.encode("abc"), [4])
    }
}
