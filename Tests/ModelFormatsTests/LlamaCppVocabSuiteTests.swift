import Foundation
import XCTest
@testable import ModelFormats

/// llama.cpp's tokenizer test suite (test-tokenizer-0): vocab-only GGUFs with inputs (`.inp`,
/// separated by `__ggml_vocab_test__` lines) and the ids llama.cpp produces for them (`.out`, one
/// line each), tokenized without BOS and without parsing special tokens. tools/bootstrap extracts
/// them from the llama-cpp-python 0.3.16 sdist into models/vocab/.
final class LlamaCppVocabSuiteTests: XCTestCase {
    struct Case { let text: String; let ids: [Int] }

    static var vocabDir: URL {
        if let d = ProcessInfo.processInfo.environment["LAYERSHARE_VOCAB_DIR"] { return URL(fileURLWithPath: d) }
        return packageRoot.appendingPathComponent("models/vocab")
    }

    /// Reads `ggml-vocab-NAME.gguf` and its cases; fails (never skips) when the suite is missing.
    static func load(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> (Tokenizer, [Case]) {
        let base = vocabDir.appendingPathComponent("ggml-vocab-\(name).gguf")
        guard FileManager.default.fileExists(atPath: base.path + ".out") else {
            XCTFail("llama.cpp vocab suite not found at \(base.path): run tools/bootstrap", file: file, line: line)
            throw XCTSkip("vocab suite missing")
        }
        let tok = try Tokenizer(gguf: try GGUFFile(path: base.path))
        return (tok, try cases(inp: base.path + ".inp", out: base.path + ".out"))
    }

    /// Splits the inputs on the separator line and pairs them with the output lines, as
    /// test-tokenizer-0 does (the input file ends with a separator, so its last piece is no case).
    static func cases(inp: String, out: String) throws -> [Case] {
        var texts = String(decoding: try Data(contentsOf: URL(fileURLWithPath: inp)), as: UTF8.self)
            .components(separatedBy: "\n__ggml_vocab_test__\n")
        if texts.last == "" { texts.removeLast() }
        var lines = String(decoding: try Data(contentsOf: URL(fileURLWithPath: out)), as: UTF8.self)
            .split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        guard texts.count == lines.count, !texts.isEmpty else {
            throw TokenizerError.invalidVocabulary("\(inp): \(texts.count) inputs but \(lines.count) expected lines")
        }
        return try zip(texts, lines).map { t, o in
            let ids = try o.split(separator: " ").map { s -> Int in
                guard let v = Int(s) else { throw TokenizerError.invalidVocabulary("\(out): '\(s)' is not an id") }
                return v
            }
            return Case(text: t, ids: ids)
        }
    }

    /// Every case equal; returns the number that passed.
    /// Every case must give llama.cpp's ids, and decode back to its input (every vocabulary here
    /// covers all bytes: byte-level BPE by construction, SentencePiece through `<0xXX>` tokens, and
    /// the leading space SentencePiece adds is dropped by `decode`).
    func check(_ name: String, expectedCases: Int = 46, file: StaticString = #filePath, line: UInt = #line) throws {
        let (tok, cases) = try Self.load(name, file: file, line: line)
        XCTAssertEqual(cases.count, expectedCases, "\(name): number of cases", file: file, line: line)
        var passed = 0
        for c in cases {
            let ids = tok.encode(c.text, parseSpecial: false)
            if ids == c.ids {
                passed += 1
            } else {
                XCTFail("\(name): \(String(reflecting: c.text))\n  expected \(c.ids)\n  actual   \(ids)", file: file, line: line)
            }
            XCTAssertEqual(try tok.decode(ids), c.text, "\(name): decode(encode(x)) for \(String(reflecting: c.text))",
                           file: file, line: line)
        }
        print("vocab suite \(name): \(passed)/\(cases.count) cases equal")
    }

    func testLlamaBPE() throws { try check("llama-bpe") }
    func testQwen2() throws { try check("qwen2") }
    func testGPT2() throws { try check("gpt-2") }
    func testLlamaSPM() throws { try check("llama-spm") }
    /// BOS as llama.cpp adds it with add_special: from add_bos_token, else on for the Llama 3 family
    /// and SentencePiece, off for other BPE vocabularies.
    func testBOSDefaults() throws {
        for (name, bos) in [("llama-bpe", 128000), ("llama-spm", 1)] {
            let (tok, _) = try Self.load(name)
            XCTAssertTrue(tok.addBosToken, name)
            XCTAssertEqual(tok.encode("Hello", addSpecial: true, parseSpecial: false).first, bos, name)
            XCTAssertEqual(tok.encode("Hello", addSpecial: false, parseSpecial: false).first, tok.encode("Hello", parseSpecial: false).first)
        }
        for name in ["qwen2", "gpt-2"] {
            let (tok, _) = try Self.load(name)
            XCTAssertFalse(tok.addBosToken, name)
            XCTAssertEqual(tok.encode("Hello", addSpecial: true, parseSpecial: false), tok.encode("Hello", parseSpecial: false), name)
        }
    }

    // Other vocabularies of the suite whose pre-tokenizers are implemented here.
    func testCommandR() throws { try check("command-r") }
    func testMPT() throws { try check("mpt") }
    func testRefact() throws { try check("refact") }
    func testStarcoder() throws { try check("starcoder") }
    func testPhi3() throws { try check("phi-3") }

    /// The suite's vocabularies whose pre-tokenizers are not implemented fail to load with the
    /// value named (so a new one shows up here rather than silently tokenizing wrongly).
    func testUnsupportedVocabulariesNameTheirPreTokenizer() throws {
        for name in ["falcon", "deepseek-coder", "deepseek-llm"] {
            let path = Self.vocabDir.appendingPathComponent("ggml-vocab-\(name).gguf").path
            XCTAssertThrowsError(try Tokenizer(gguf: try GGUFFile(path: path))) { e in
                XCTAssertEqual(e as? TokenizerError, .unsupportedPreTokenizer(name))
                XCTAssertTrue(String(describing: e).contains("llama-bpe"), "lists the supported values")
            }
        }
    }

    /// A vocabulary-only file written here: model types other than gpt2 / llama (BERT WordPiece,
    /// T5 Unigram) and unknown pre-tokenizers are refused by name.
    func testUnsupportedModelAndPreTokenizer() throws {
        let dir = try makeTempDir(self)
        func vocabOnly(model: String, pre: String) throws -> String {
            var g = GGUFBuilder()
            g.set("tokenizer.ggml.model", .string(model))
            g.set("tokenizer.ggml.pre", .string(pre))
            g.set("tokenizer.ggml.tokens", .array(elementType: 8, [.string("a"), .string("b")]))
            g.set("tokenizer.ggml.merges", .array(elementType: 8, [.string("a b")]))
            let url = dir.appendingPathComponent("\(model)-\(pre).gguf")
            try g.write(to: url)
            return url.path
        }
        // A file without tensors opens and tokenizes, but is refused as a model, by name.
        let plain = try vocabOnly(model: "gpt2", pre: "gpt-2")
        XCTAssertEqual(try Tokenizer(gguf: GGUFFile(path: plain)).encode("ab").count, 2)
        XCTAssertThrowsError(try GGUFModel(path: plain)) { e in
            XCTAssertEqual(e as? ModelError, .vocabularyOnly(path: plain))
            XCTAssertTrue(String(describing: e).contains("vocabulary-only"))
        }
        XCTAssertThrowsError(try Tokenizer(gguf: GGUFFile(path: vocabOnly(model: "bert", pre: "default")))) { e in
            XCTAssertEqual(e as? TokenizerError, .unsupportedModel("bert"))
        }
        XCTAssertThrowsError(try Tokenizer(gguf: GGUFFile(path: vocabOnly(model: "gpt2", pre: "tekken")))) { e in
            XCTAssertEqual(e as? TokenizerError, .unsupportedPreTokenizer("tekken"))
        }
    }
}
