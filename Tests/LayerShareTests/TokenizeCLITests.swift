import Foundation
import XCTest

/// `layershare tokenize` on llama.cpp's vocabulary-only GGUFs (fetched by tools/bootstrap into
/// models/vocab/): ids as the suite's expected lines give them, the three output forms, the text
/// sources, and clear errors.
final class TokenizeCLITests: XCTestCase {
    private static let vocabDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("models/vocab")

    private func vocab(_ name: String) throws -> String {
        let path = Self.vocabDir.appendingPathComponent("ggml-vocab-\(name).gguf").path
        guard FileManager.default.fileExists(atPath: path) else {
            XCTFail("llama.cpp vocab suite not found at \(path): run tools/bootstrap")
            throw XCTSkip("vocab suite missing")
        }
        return path
    }

    /// The suite's expected ids (no BOS) for input `text` of vocabulary `name`.
    private func expected(_ name: String, _ text: String) throws -> [Int] {
        let base = try vocab(name)
        let inputs = try String(contentsOfFile: base + ".inp", encoding: .utf8).components(separatedBy: "\n__ggml_vocab_test__\n")
        let lines = try String(contentsOfFile: base + ".out", encoding: .utf8).components(separatedBy: "\n")
        guard let i = inputs.firstIndex(of: text) else { throw XCTSkip("no case \(text)") }
        return lines[i].split(separator: " ").map { Int($0)! }
    }

    private func run(_ arguments: [String], input: [String]? = nil) throws -> CLIProcess.Result {
        try CLIProcess.run(["tokenize"] + arguments, input: input, timeout: 60)
    }

    func testIdsOnOneLineWithBOSAsTheModelAsks() throws {
        let ids = try expected("llama-spm", "Hello world")
        let r = try run(["-m", vocab("llama-spm"), "-p", "Hello world"])
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertEqual(r.stdout, ([1] + ids).map(String.init).joined(separator: " ") + "\n")
        let noBos = try run(["-m", vocab("llama-spm"), "-p", "Hello world", "--no-bos"])
        XCTAssertEqual(noBos.stdout, ids.map(String.init).joined(separator: " ") + "\n", noBos.all)
        // Llama 3 adds BOS (llama.cpp's default for its pre-tokenizer); GPT-2 does not.
        let llama3 = try run(["--model", vocab("llama-bpe"), "--prompt", " Hello World"])
        XCTAssertEqual(llama3.stdout, ([128000] + (try expected("llama-bpe", " Hello World"))).map(String.init).joined(separator: " ") + "\n")
        let gpt2 = try run(["--model", vocab("gpt-2"), "--prompt", " Hello World"])
        XCTAssertEqual(gpt2.stdout, (try expected("gpt-2", " Hello World")).map(String.init).joined(separator: " ") + "\n")
    }

    func testJSONAndPieces() throws {
        let ids = try expected("qwen2", "Hello, world!")
        let r = try run(["-m", vocab("qwen2"), "-p", "Hello, world!", "--json", "--show-pieces"])
        XCTAssertEqual(r.status, 0, r.all)
        let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        XCTAssertEqual(obj?["ids"] as? [Int], ids)
        XCTAssertEqual((obj?["pieces"] as? [String])?.joined(), "Hello, world!")
        let idsOnly = try run(["-m", vocab("qwen2"), "-p", "Hello, world!", "--json"])
        XCTAssertEqual(try JSONSerialization.jsonObject(with: Data(idsOnly.stdout.utf8)) as? [String: [Int]], ["ids": ids])
        let table = try run(["-m", vocab("qwen2"), "-p", "Hello, world!", "--show-pieces"])
        let rows = table.stdout.split(separator: "\n")
        XCTAssertEqual(rows.count, ids.count, table.stdout)
        XCTAssertEqual(rows.first.map(String.init), "\(ids[0]) -> 'Hello'")
        // Half a character shows as \xNN; a newline as \n.
        let emoji = try run(["-m", vocab("gpt-2"), "-p", "🦙\n", "--show-pieces"])
        XCTAssertTrue(emoji.stdout.contains("\\xF0") && emoji.stdout.contains("'\\n'"), emoji.stdout)
    }

    func testTextFromStandardInputAndFile() throws {
        let ids = try expected("gpt-2", "Hello world")
        let line = ids.map(String.init).joined(separator: " ") + "\n"
        XCTAssertEqual(try run(["-m", vocab("gpt-2")], input: ["Hello world"]).stdout, line)
        XCTAssertEqual(try run(["-m", vocab("gpt-2"), "-p", "-"], input: ["Hello world"]).stdout, line)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tokenize-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("text.txt")
        try Data("Hello world".utf8).write(to: file)
        XCTAssertEqual(try run(["-m", vocab("gpt-2"), "--file", file.path]).stdout, line)
        // Special-token text: one id by default, plain text with --no-parse-special.
        let special = try run(["-m", vocab("qwen2"), "-p", "<|im_start|>"])
        XCTAssertEqual(special.stdout, "151644\n", special.all)
        let plain = try run(["-m", vocab("qwen2"), "-p", "<|im_start|>", "--no-parse-special"])
        XCTAssertGreaterThan(plain.stdout.split(separator: " ").count, 1, plain.all)
    }

    /// A Hugging Face directory (its tokenizer.json) and the tokenizer.json itself; letters a…h are ids 0…7.
    func testHuggingFaceDirectoryAndJSON() throws {
        let dir = try TinyCheckpoint.write(vocabulary: 8, tokenizerTokens: 8, test: self)
        XCTAssertEqual(try run(["-m", dir.path, "-p", "bad"]).stdout, "1 0 3\n")
        XCTAssertEqual(try run(["-m", dir.appendingPathComponent("tokenizer.json").path, "-p", "head"]).stdout, "7 4 0 3\n")
        let empty = try ModelCopies.temporaryDirectory(self)
        assertClearError(try run(["-m", empty.path, "-p", "x"]), ["without tokenizer.json"])
    }

    func testErrors() throws {
        assertClearError(try run(["-m", "/nonexistent/model.gguf", "-p", "x"]), ["model not found at /nonexistent/model.gguf"])
        let readme = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("README.md").path
        assertClearError(try run(["-m", readme, "-p", "x"]), ["not a GGUF file"])
        assertClearError(try run(["-m", vocab("deepseek-llm"), "-p", "x"]), ["unsupported pre-tokenizer 'deepseek-llm'", "llama-bpe"])
        assertClearError(try run(["-m", vocab("gpt-2"), "-p", "x", "--file", readme]), ["either --prompt or --file"])
        assertClearError(try run(["-m", vocab("gpt-2"), "--file", "/nonexistent/text.txt"]), ["/nonexistent/text.txt"])
        // The model commands refuse a vocabulary-only file by name.
        let gen = try CLIProcess.run(["generate", "--backend", "cpu", "-m", vocab("llama-spm"), "-p", "x", "-n", "1"], timeout: 60)
        assertClearError(gen, ["vocabulary-only GGUF", "layershare tokenize"])
    }
}
