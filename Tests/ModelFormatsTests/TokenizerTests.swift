import Foundation
import XCTest
@testable import ModelFormats

struct TokenizerCase: Decodable {
    let text: String
    let parseSpecial: Bool
    let ids: [Int]
}

private struct TokenizerFixture: Decodable {
    let model: String
    let cases: [TokenizerCase]
}

/// Expected ids from tools/tokenizer_fixture.py (plain Python BPE cross-checked with HF tokenizers).
func loadTokenizerCases() throws -> [TokenizerCase] {
    let data = try Data(contentsOf: fixtureURL("tokenizer_cases.json"))
    return try JSONDecoder().decode(TokenizerFixture.self, from: data).cases
}

final class TokenizerTests: XCTestCase {
    func testKnownIdsFromIndependentImplementation() throws {
        let (_, tok) = try RealModel.load()
        let cases = try loadTokenizerCases()
        XCTAssertGreaterThanOrEqual(cases.count, 25)
        for c in cases {
            let ids = tok.encode(c.text, parseSpecial: c.parseSpecial)
            XCTAssertEqual(ids, c.ids, "encoding \(String(reflecting: String(c.text.prefix(80)))) parseSpecial=\(c.parseSpecial)")
        }
    }

    func testSpecialTokensAndIds() throws {
        let (_, tok) = try RealModel.load()
        XCTAssertEqual(tok.vocabSize, 49152)
        XCTAssertEqual(tok.bosId, 1)
        XCTAssertEqual(tok.eosId, 2)
        XCTAssertEqual(tok.padId, 2)
        XCTAssertFalse(tok.addBosToken)
        XCTAssertEqual(tok.preTokenizer, .gpt2IsolatedDigits)
        XCTAssertEqual(tok.imEndId, 2)
        XCTAssertEqual(tok.imStartId, 1)
        XCTAssertEqual(tok.tokenText(0), "<|endoftext|>")
        XCTAssertEqual(tok.tokenId(for: "<|im_end|>"), 2)
        XCTAssertTrue((0...16).allSatisfy(tok.isSpecial))
        XCTAssertFalse(tok.isSpecial(17))
        XCTAssertFalse(tok.isSpecial(-1))
        XCTAssertNil(tok.tokenText(49152))
        XCTAssertEqual(tok.encode("<|im_end|>"), [2])
        XCTAssertNotEqual(tok.encode("<|im_end|>", parseSpecial: false), [2])
        XCTAssertEqual(try tok.decode([1, 4093, 198]), "<|im_start|>user\n")
    }

    func testDecodeOutOfRangeThrows() throws {
        let (_, tok) = try RealModel.load()
        XCTAssertThrowsError(try tok.decode([17, 49152])) { e in
            XCTAssertEqual(e as? TokenizerError, .idOutOfRange(49152, 49152))
            XCTAssertTrue(String(describing: e).contains("49152"))
        }
        XCTAssertThrowsError(try tok.decodeBytes([-1])) { e in XCTAssertEqual(e as? TokenizerError, .idOutOfRange(-1, 49152)) }
        var s = tok.makeStreamingDecoder()
        XCTAssertThrowsError(try s.append(1 << 40))
    }

    /// The vocabulary has no token for these bytes; they are dropped as llama.cpp and HF do.
    func testUncoveredBytes() throws {
        let (_, tok) = try RealModel.load()
        let missing = (0...255).filter { !tok.canEncode(byte: UInt8($0)) }
        XCTAssertEqual(missing, [0x04, 0x06, 0x13, 0x14, 0x16, 0x1D, 0xC0, 0xC1, 0xF1, 0xF2, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9,
                                 0xFA, 0xFB, 0xFC, 0xFD, 0xFE, 0xFF])
        XCTAssertEqual(try tok.decode(tok.encode("a\u{04}b")), "ab")
    }

    func testRoundTripRandomStrings() throws {
        let (_, tok) = try RealModel.load()
        var rng = SeededGenerator(seed: testSeed("testRoundTripRandomStrings"))
        let ranges: [ClosedRange<UInt32>] = [
            0x20...0x7E, 0x20...0x7E, 0x20...0x7E, // ASCII weighted up
            0x00...0x1F, 0x7F...0x7F,              // controls
            0xA0...0x24F,                          // Latin-1 / Extended
            0x300...0x36F,                         // combining marks
            0x370...0x6FF,                         // Greek, Cyrillic, Hebrew, Arabic
            0x900...0xE7F,                         // Indic, Thai
            0x2000...0x206F,                       // general punctuation incl. ZWJ, odd spaces
            0x3000...0x30FF, 0x4E00...0x9FFF,      // CJK
            0xAC00...0xD7A3,                       // Hangul
            0xFE00...0xFE0F,                       // variation selectors
            0x1F300...0x1FAFF, 0x1F3FB...0x1F3FF,  // emoji, skin tones
            0x10000...0x3FFFF, 0xE0000...0x10FFFF, // other planes (U+40000–U+BFFFF need the absent F1/F2 bytes)
        ]
        let pieces = ["<|im_start|>", "<|im_end|>", "'s", "'ll", " ", "  ", "\n", "\r\n", "\t", "123", "3.14", "👍🏽", "<|im_"]
        var lossless = 0
        for n in 0..<400 {
            var s = String.UnicodeScalarView()
            let length = Int.random(in: 0...40, using: &rng)
            for _ in 0..<length {
                if Int.random(in: 0..<8, using: &rng) == 0 {
                    s.append(contentsOf: pieces.randomElement(using: &rng)!.unicodeScalars)
                    continue
                }
                let r = ranges.randomElement(using: &rng)!
                guard let u = Unicode.Scalar(UInt32.random(in: r, using: &rng)) else { continue } // surrogates
                s.append(u)
            }
            let text = String(s)
            let covered = text.utf8.allSatisfy(tok.canEncode(byte:))
            if !covered { continue }
            lossless += 1
            for parse in [true, false] {
                let ids = tok.encode(text, parseSpecial: parse)
                let back = try tok.decode(ids)
                XCTAssertEqual(Array(back.utf8), Array(text.utf8), "case \(n) parseSpecial=\(parse): \(String(reflecting: text))")
                XCTAssertTrue(ids.allSatisfy { (0..<tok.vocabSize).contains($0) })
            }
        }
        XCTAssertGreaterThan(lossless, 200)
    }

    func testStreamingDecoderMatchesWholeDecode() throws {
        let (_, tok) = try RealModel.load()
        var texts = try loadTokenizerCases().map(\.text)
        texts += ["🙂👍🏽 naïve 你好", "👨‍👩‍👧‍👦 family", "e\u{301}\u{302}"]
        for text in texts {
            let ids = tok.encode(text)
            var dec = tok.makeStreamingDecoder()
            var out = ""
            for id in ids {
                let piece = try dec.append(id)
                // Never emits a replacement character for a valid input split mid-character.
                XCTAssertFalse(piece.unicodeScalars.contains("\u{FFFD}"), String(reflecting: text))
                out += piece
            }
            XCTAssertFalse(dec.hasPending)
            out += dec.finish()
            XCTAssertEqual(out, try tok.decode(ids))
        }
    }

    func testStreamingHoldsBackSplitEmoji() throws {
        let (_, tok) = try RealModel.load()
        let ids = tok.encode("🙂")
        XCTAssertGreaterThan(ids.count, 1, "expected the emoji to span several tokens")
        var dec = tok.makeStreamingDecoder()
        var outputs: [String] = []
        for id in ids { outputs.append(try dec.append(id)) }
        XCTAssertEqual(outputs.dropLast().joined(), "")
        XCTAssertEqual(outputs.last, "🙂")
        // A stream cut mid-character flushes a replacement character.
        var cut = tok.makeStreamingDecoder()
        XCTAssertEqual(try cut.append(ids[0]), "")
        XCTAssertTrue(cut.hasPending)
        XCTAssertEqual(cut.finish(), "\u{FFFD}")
        XCTAssertEqual(StreamingDecoder.completePrefixLength([0x61, 0xE4, 0xBD]), 1)
        XCTAssertEqual(StreamingDecoder.completePrefixLength([0x61, 0xE4, 0xBD, 0xA0]), 4)
        XCTAssertEqual(StreamingDecoder.completePrefixLength([0x80, 0x80]), 2)
    }

    func testEncodeSpeedOnLicenseText() throws {
        let (_, tok) = try RealModel.load()
        guard let gpl = try loadTokenizerCases().first(where: { $0.text.utf8.count > 30_000 }) else {
            return XCTFail("fixture lacks the long license text; regenerate with tools/tokenizer_fixture.py")
        }
        // Fresh tokenizer so the word cache is cold.
        let fresh = try Tokenizer(gguf: try RealModel.load().0)
        let start = Date()
        let ids = fresh.encode(gpl.text)
        let elapsed = Date().timeIntervalSince(start)
        print("encoded \(gpl.text.utf8.count) bytes into \(ids.count) tokens in \(String(format: "%.3f", elapsed)) s")
        XCTAssertEqual(ids, gpl.ids)
        XCTAssertEqual(tok.encode(gpl.text), gpl.ids)
        #if DEBUG
        XCTAssertLessThan(elapsed, 10)
        #else
        XCTAssertLessThan(elapsed, 0.5)
        #endif
    }

    /// One pre-token of 150 000 letters (a long word in a `ppl --file` text, or a prompt): merging by
    /// rescanning every pair after each merge took 2.7 s in release, growing with the square of the
    /// length (minutes for a megabyte); the heap takes a fraction of a second.
    func testLongWordEncodesInNearLinearTime() throws {
        let fresh = try Tokenizer(gguf: try RealModel.load().0)
        let word = String(repeating: "thequickbrownfox", count: 150_000 / 16)
        let start = Date()
        let ids = fresh.encode(word)
        let elapsed = Date().timeIntervalSince(start)
        print("encoded a \(word.utf8.count)-letter word into \(ids.count) tokens in \(String(format: "%.3f", elapsed)) s")
        XCTAssertEqual(try fresh.decode(ids), word)
        #if DEBUG
        XCTAssertLessThan(elapsed, 20)
        #else
        XCTAssertLessThan(elapsed, 1)
        #endif
    }

    /// The heap gives what rescanning for the lowest-ranked, leftmost pair gives, on words with chains
    /// of merges over a three-letter alphabet (equal neighbours, overlapping candidates).
    func testMergesMatchRescanning() throws {
        let merges: [(String, String)] = [("a", "a"), ("b", "c"), ("aa", "a"), ("a", "bc"), ("c", "a"), ("aa", "aa"),
                                          ("abc", "aa"), ("b", "b"), ("ca", "bb"), ("c", "c"), ("aaa", "bc")]
        var tokens = ["a", "b", "c"]
        for (a, b) in merges where !tokens.contains(a + b) { tokens.append(a + b) }
        let tok = try Tokenizer(tokens: tokens, types: tokens.map { _ in .normal }, merges: merges, preTokenizer: .gpt2,
                                bosId: nil, eosId: nil)
        func rescanning(_ word: String) -> [Int] {
            var syms = word.map(String.init)
            while true {
                let ranks = zip(syms, syms.dropFirst()).map { p in merges.firstIndex { $0 == p } ?? .max }
                guard let best = ranks.indices.min(by: { ranks[$0] < ranks[$1] }), ranks[best] != .max else { break }
                syms[best...best + 1] = [syms[best] + syms[best + 1]]
            }
            return syms.map { tokens.firstIndex(of: $0)! }
        }
        var rng = SeededGenerator(seed: testSeed("testMergesMatchRescanning"))
        for _ in 0..<2000 {
            let word = String((0..<Int.random(in: 1...24, using: &rng)).map { _ in "abc".randomElement(using: &rng)! })
            XCTAssertEqual(tok.encode(word), rescanning(word), word)
        }
    }
}
