import XCTest
@testable import ModelFormats

/// Each pre-tokenizer on hand-picked strings; the expected pieces follow from its regex (see
/// `PreTokenizer`), alternative by alternative.
final class PreTokenizerTests: XCTestCase {
    private func split(_ p: PreTokenizer, _ s: String) -> [String] {
        p.split(Substring(s)).map { String(decoding: $0, as: UTF8.self) }
    }

    func testLlama3() {
        // Contractions are case-insensitive.
        XCTAssertEqual(split(.llama3, "I'm can't WE'LL"), ["I", "'m", " can", "'t", " WE", "'LL"])
        // Digits in groups of up to three, from the left; a lone space before digits stands alone.
        XCTAssertEqual(split(.llama3, "12345 1234567"), ["123", "45", " ", "123", "456", "7"])
        // One non-letter, non-digit character (not a line break) may lead a word.
        XCTAssertEqual(split(.llama3, "hello(world)"), ["hello", "(world", ")"])
        XCTAssertEqual(split(.llama3, "\tword"), ["\tword"])
        // Whitespace up to the last line break of a run; a run before a word leaves one space to it.
        XCTAssertEqual(split(.llama3, "a\n\n  b"), ["a", "\n\n", " ", " b"])
        XCTAssertEqual(split(.llama3, "x  \n"), ["x", "  \n"])
        XCTAssertEqual(split(.llama3, "x   "), ["x", "   "])
        // Punctuation takes the line breaks after it.
        XCTAssertEqual(split(.llama3, "!!!\n\nok"), ["!!!\n\n", "ok"])
        // CJK ideographs are letters; emoji are neither letters nor digits.
        XCTAssertEqual(split(.llama3, "我想在apple工作"), ["我想在apple工作"])
        XCTAssertEqual(split(.llama3, " 🦙.cpp"), [" 🦙.", "cpp"])
        XCTAssertEqual(split(.llama3, ""), [])
    }

    func testQwen2() {
        XCTAssertEqual(split(.qwen2, "1234 x"), ["1", "2", "3", "4", " x"])
        XCTAssertEqual(split(.qwen2, "I'M here"), ["I", "'M", " here"])
        XCTAssertEqual(split(.qwen2, "a\r\n\r\nb"), ["a", "\r\n\r\n", "b"])
        XCTAssertEqual(split(.qwen2, "١٢٣"), ["١", "٢", "٣"])  // Arabic-Indic digits are \p{N}
    }

    func testGPT2() {
        XCTAssertEqual(split(.gpt2, "Hello  world's 123!!"), ["Hello", " ", " world", "'s", " 123", "!!"])
        XCTAssertEqual(split(.gpt2IsolatedDigits, "Hello  world's 123!!"), ["Hello", " ", " world", "'s", " ", "1", "2", "3", "!!"])
        // Contractions are case-sensitive: "'M" is punctuation then a letter run.
        XCTAssertEqual(split(.gpt2, "I'M"), ["I", "'", "M"])
        XCTAssertEqual(split(.gpt2, "hello(world)"), ["hello", "(", "world", ")"])
        XCTAssertEqual(split(.gpt2, "a \n\nb  "), ["a", " \n", "\n", "b", "  "])
        XCTAssertEqual(split(.gpt2, "x\t y"), ["x", "\t", " y"])
        XCTAssertEqual(split(.gpt2, " 🦙.cpp"), [" 🦙.", "cpp"])
        XCTAssertEqual(split(.gpt2, "12345"), ["12345"])
        XCTAssertEqual(split(.gpt2, ""), [])
    }

    /// Concatenating the pieces gives the input back, for every rule, on mixed random text.
    func testPiecesCoverTheInput() {
        var rng = SeededGenerator(seed: testSeed("testPiecesCoverTheInput"))
        let alphabet = Array("aZ9 \t\n\r'sLl!.é我🦙١\u{00A0}\u{2003}")
        for _ in 0..<500 {
            let s = String((0..<Int.random(in: 0...30, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! })
            for p in PreTokenizer.allCases {
                let pieces = p.split(Substring(s))
                XCTAssertEqual(pieces.flatMap { $0 }, Array(s.utf8), "\(p) on \(String(reflecting: s))")
                XCTAssertFalse(pieces.contains { $0.isEmpty })
            }
        }
    }

    func testGGMLPreNames() {
        XCTAssertEqual(PreTokenizer(ggmlPre: "smollm"), .gpt2IsolatedDigits)
        XCTAssertEqual(PreTokenizer(ggmlPre: "llama-bpe"), .llama3)
        XCTAssertEqual(PreTokenizer(ggmlPre: "qwen2"), .qwen2)
        XCTAssertEqual(PreTokenizer(ggmlPre: "gpt-2"), .gpt2)
        XCTAssertNil(PreTokenizer(ggmlPre: "deepseek-llm"))
        XCTAssertEqual(PreTokenizer(ggmlPre: "dbrx"), .llama3)
        XCTAssertTrue(PreTokenizer.llama3Family.contains("llama-bpe"))
        XCTAssertFalse(PreTokenizer.llama3Family.contains("dbrx"))  // same split, but merges as usual
        let message = TokenizerError.unsupportedPreTokenizer("tekken").description
        XCTAssertTrue(message.contains("'tekken'") && message.contains("qwen2") && message.contains("llama-bpe"), message)
    }
}
