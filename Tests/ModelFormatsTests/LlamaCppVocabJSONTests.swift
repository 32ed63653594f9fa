import Foundation
import XCTest
@testable import ModelFormats

/// The tokenizer.json forms of the suite's vocabularies: each GGUF vocabulary is written out as the
/// tokenizer.json its model ships (vocab, added tokens, merges, and the pre-tokenizer or
/// normalizer configuration of Llama 3, Qwen2, GPT-2 and Llama 2), loaded with
/// `Tokenizer(huggingFaceJSON:)`, and must give llama.cpp's ids for every case.
final class LlamaCppVocabJSONTests: XCTestCase {
    private func byteLevelSplit(_ regex: String) -> [String: Any] {
        ["type": "Sequence", "pretokenizers": [
            ["type": "Split", "pattern": ["Regex": regex], "behavior": "Isolated", "invert": false],
            ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false],
        ]]
    }

    /// tokenizer.json for GGUF vocabulary `name`; `configure` adds the pre-tokenizer / normalizer.
    private func writeJSON(_ name: String, sentencePiece: Bool = false, configure: (inout [String: Any], inout [String: Any]) -> Void) throws -> String {
        let gguf = try GGUFFile(path: LlamaCppVocabSuiteTests.vocabDir.appendingPathComponent("ggml-vocab-\(name).gguf").path)
        let tokens = try gguf.stringArray("tokenizer.ggml.tokens")
        let types = try gguf.intArray("tokenizer.ggml.token_type").map { Tokenizer.TokenType(rawValue: $0) ?? .normal }
        var vocab: [String: Int] = [:]
        var added: [[String: Any]] = []
        for (i, t) in tokens.enumerated() {
            switch types[i] {
            case .control: added.append(["id": i, "content": t, "special": true])
            case .userDefined: added.append(["id": i, "content": t, "special": false])
            default: vocab[t] = vocab[t] ?? i
            }
        }
        var merges: [String] = []
        if sentencePiece {
            merges = try Self.mergesFromScores(tokens, types, gguf.array("tokenizer.ggml.scores").map { Float($0.float!) }, vocab)
        } else {
            merges = try gguf.stringArray("tokenizer.ggml.merges")
        }
        var model: [String: Any] = ["type": "BPE", "vocab": vocab, "merges": merges]
        var root: [String: Any] = ["added_tokens": added]
        configure(&root, &model)
        root["model"] = model
        let dir = try makeTempDir(self)
        let path = dir.appendingPathComponent("tokenizer.json").path
        try JSONSerialization.data(withJSONObject: root).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Merges as Hugging Face's SentencePiece converter derives them: every split of a piece into
    /// two pieces, ordered by the score of the whole piece, highest first.
    static func mergesFromScores(_ tokens: [String], _ types: [Tokenizer.TokenType], _ scores: [Float], _ vocab: [String: Int]) -> [String] {
        var rules: [(score: Float, id: Int, left: String, right: String)] = []
        for (id, t) in tokens.enumerated() where types[id] == .normal && t.count > 1 {
            for cut in t.indices.dropFirst() {
                let l = String(t[..<cut]), r = String(t[cut...])
                if vocab[l] != nil, vocab[r] != nil { rules.append((scores[id], id, l, r)) }
            }
        }
        rules.sort { $0.score != $1.score ? $0.score > $1.score : $0.id < $1.id }
        return rules.map { "\($0.left) \($0.right)" }
    }

    private func check(_ name: String, path: String, expect model: Tokenizer.Model, pre: PreTokenizer? = nil) throws {
        let tok = try Tokenizer(huggingFaceJSON: path)
        XCTAssertEqual(tok.model, model)
        if let pre { XCTAssertEqual(tok.preTokenizer, pre) }
        let (_, cases) = try LlamaCppVocabSuiteTests.load(name)
        var passed = 0
        for c in cases {
            let ids = tok.encode(c.text, parseSpecial: false)
            if ids == c.ids { passed += 1 } else { XCTFail("\(name) (tokenizer.json): \(String(reflecting: c.text))\n  expected \(c.ids)\n  actual   \(ids)") }
            XCTAssertEqual(try tok.decode(ids), c.text)
        }
        print("vocab suite \(name) via tokenizer.json: \(passed)/\(cases.count) cases equal")
    }

    func testLlama3JSON() throws {
        let path = try writeJSON("llama-bpe") { root, model in
            root["pre_tokenizer"] = byteLevelSplit(Tokenizer.hfSplitPatterns.first { $0.value == .llama3 }!.key)
            model["ignore_merges"] = true
        }
        try check("llama-bpe", path: path, expect: .bytePairs, pre: .llama3)
        XCTAssertTrue(try Tokenizer(huggingFaceJSON: path).ignoreMerges)
    }

    func testQwen2JSON() throws {
        let path = try writeJSON("qwen2") { root, _ in
            root["pre_tokenizer"] = byteLevelSplit(Tokenizer.hfSplitPatterns.first { $0.value == .qwen2 }!.key)
        }
        try check("qwen2", path: path, expect: .bytePairs, pre: .qwen2)
    }

    func testGPT2JSON() throws {
        let path = try writeJSON("gpt-2") { root, _ in
            root["pre_tokenizer"] = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true]
        }
        try check("gpt-2", path: path, expect: .bytePairs, pre: .gpt2)
    }

    /// Llama 2's form (Prepend + Replace normalizer) and the newer Metaspace one.
    func testSentencePieceJSON() throws {
        let normalized = try writeJSON("llama-spm", sentencePiece: true) { root, model in
            root["normalizer"] = ["type": "Sequence", "normalizers": [["type": "Prepend", "prepend": "\u{2581}"],
                                                                      ["type": "Replace", "pattern": ["String": " "], "content": "\u{2581}"]]]
            model["byte_fallback"] = true
            model["unk_token"] = "<unk>"
        }
        try check("llama-spm", path: normalized, expect: .sentencePiece)
        XCTAssertEqual(try Tokenizer(huggingFaceJSON: normalized).tokenType(0), .unknown)
        let metaspace = try writeJSON("llama-spm", sentencePiece: true) { root, model in
            root["pre_tokenizer"] = ["type": "Metaspace", "replacement": "\u{2581}", "prepend_scheme": "first", "split": false]
            model["byte_fallback"] = true
        }
        try check("llama-spm", path: metaspace, expect: .sentencePiece)
    }

    func testUnknownSplitPatternIsNamed() throws {
        let dir = try makeTempDir(self)
        let path = dir.appendingPathComponent("tokenizer.json").path
        let json: [String: Any] = ["model": ["type": "BPE", "vocab": ["a": 0], "merges": []], "pre_tokenizer": byteLevelSplit(#"\p{L}+|\s+"#)]
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try Tokenizer(huggingFaceJSON: path)) { e in
            XCTAssertEqual(e as? TokenizerError, .unsupportedPreTokenizer(#"Split on \p{L}+|\s+"#))
        }
    }
}
