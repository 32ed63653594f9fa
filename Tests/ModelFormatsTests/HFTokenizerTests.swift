import Foundation
import XCTest
@testable import ModelFormats

final class HFTokenizerTests: XCTestCase {
    /// Writes a tokenizer.json with the GGUF's vocabulary (merges as [a, b] pairs) and checks it
    /// tokenizes the fixture exactly like the GGUF-built tokenizer.
    func testTokenizerJSONMatchesGGUF() throws {
        let (file, gguf) = try RealModel.load()
        let tokens = try file.stringArray("tokenizer.ggml.tokens")
        let types = try file.intArray("tokenizer.ggml.token_type")
        let merges = try file.stringArray("tokenizer.ggml.merges")
        var vocab: [String: Int] = [:]
        var added: [[String: Any]] = []
        for (i, t) in tokens.enumerated() {
            vocab[t] = i
            if types[i] == 3 { added.append(["id": i, "content": t, "special": true]) }
        }
        let json: [String: Any] = [
            "version": "1.0",
            "added_tokens": added,
            "pre_tokenizer": ["type": "Sequence", "pretokenizers": [
                ["type": "Digits", "individual_digits": true],
                ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true],
            ]],
            "model": ["type": "BPE", "vocab": vocab, "merges": merges.map { $0.split(separator: " ").map(String.init) }],
        ]
        let dir = try makeTempDir(self)
        try JSONSerialization.data(withJSONObject: json).write(to: dir.appendingPathComponent("tokenizer.json"))
        try JSONSerialization.data(withJSONObject: ["bos_token": "<|im_start|>", "eos_token": ["content": "<|im_end|>"],
                                                    "pad_token": "<|im_end|>", "add_bos_token": false])
            .write(to: dir.appendingPathComponent("tokenizer_config.json"))
        let hf = try Tokenizer(huggingFaceJSON: dir.appendingPathComponent("tokenizer.json").path)
        XCTAssertEqual(hf.vocabSize, gguf.vocabSize)
        XCTAssertEqual(hf.bosId, 1)
        XCTAssertEqual(hf.eosId, 2)
        XCTAssertEqual(hf.preTokenizer, .gpt2IsolatedDigits)
        XCTAssertTrue(hf.isSpecial(0))
        for c in try loadTokenizerCases() {
            XCTAssertEqual(hf.encode(c.text, parseSpecial: c.parseSpecial), c.ids, String(reflecting: String(c.text.prefix(60))))
        }
    }

    /// Tiny hand-made vocabulary with "a b" string merges and a non-special added token.
    func testSmallTokenizerJSONWithStringMerges() throws {
        var vocab: [String: Int] = [:]
        for b in 0..<256 { vocab[String(ByteLevel.byteToScalar[b])] = b }
        vocab["he"] = 256; vocab["ll"] = 257; vocab["hell"] = 258; vocab["hello"] = 259; vocab["Ġw"] = 260
        let json: [String: Any] = [
            "added_tokens": [["id": 261, "content": "<tool>", "special": false], ["id": 262, "content": "</s>", "special": true]],
            "pre_tokenizer": ["type": "ByteLevel", "add_prefix_space": false, "use_regex": true],
            "model": ["type": "BPE", "vocab": vocab, "merges": ["h e", "l l", "he ll", "hell o", "Ġ w"]],
        ]
        let dir = try makeTempDir(self)
        let path = dir.appendingPathComponent("tokenizer.json").path
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: path))
        let tok = try Tokenizer(huggingFaceJSON: path)
        XCTAssertEqual(tok.preTokenizer, .gpt2)
        XCTAssertNil(tok.eosId) // no tokenizer_config.json and no <|endoftext|>
        XCTAssertEqual(tok.encode("hello world<tool>1</s>"),
                       [259, 260, Int(UInt8(ascii: "o")), Int(UInt8(ascii: "r")), Int(UInt8(ascii: "l")), Int(UInt8(ascii: "d")), 261, 49, 262])
        XCTAssertEqual(tok.tokenType(261), .userDefined)
        XCTAssertFalse(tok.isSpecial(261))
        XCTAssertTrue(tok.isSpecial(262))
        XCTAssertEqual(try tok.decode(tok.encode("hello world<tool>")), "hello world<tool>")
    }

    func testUnsupportedTokenizerJSON() throws {
        let dir = try makeTempDir(self)
        let path = dir.appendingPathComponent("tokenizer.json").path
        let json: [String: Any] = ["model": ["type": "Unigram", "vocab": [:]]]
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: path))
        assertThrows(try Tokenizer(huggingFaceJSON: path), contains: ["Unigram"])
        let json2: [String: Any] = ["model": ["type": "BPE", "vocab": ["a": 0], "merges": [1]],
                                    "pre_tokenizer": ["type": "ByteLevel"]]
        try JSONSerialization.data(withJSONObject: json2).write(to: URL(fileURLWithPath: path))
        assertThrows(try Tokenizer(huggingFaceJSON: path), contains: ["merges[0]"])
        let json3: [String: Any] = ["model": ["type": "BPE", "vocab": ["a": 0], "merges": []],
                                    "pre_tokenizer": ["type": "Metaspace"]]
        try JSONSerialization.data(withJSONObject: json3).write(to: URL(fileURLWithPath: path))
        assertThrows(try Tokenizer(huggingFaceJSON: path), contains: ["Metaspace"])
        assertThrows(try Tokenizer(huggingFaceJSON: dir.appendingPathComponent("nope.json").path), contains: ["nope.json"])
    }
}

final class ChatTemplateTests: XCTestCase {
    func testDefaultSystemPromptFromGGUF() throws {
        let (file, tok) = try RealModel.load()
        let t = try ChatTemplate(gguf: file)
        XCTAssertEqual(t, .smolLM2)
        XCTAssertEqual(t.render(messages: [(role: "user", content: "Hi")], addGenerationPrompt: true),
                       "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
                       + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
        XCTAssertEqual(t.render(messages: [(role: "system", content: "Be brief."), (role: "user", content: "Hi"),
                                           (role: "assistant", content: "Hello!")], addGenerationPrompt: false),
                       "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                       + "<|im_start|>assistant\nHello!<|im_end|>\n")
        XCTAssertEqual(t.render(messages: [], addGenerationPrompt: true), "<|im_start|>assistant\n")
        let ids = tok.encode(t.render(messages: [(role: "user", content: "Hi")], addGenerationPrompt: true))
        XCTAssertEqual(ids.first, 1)
        XCTAssertEqual(ids.filter { $0 == 1 }.count, 3)
        XCTAssertEqual(ids.filter { $0 == 2 }.count, 2)
    }

    /// Families recognised from template text (shortened forms of the markers real templates use),
    /// their rendering, and the named fallback.
    func testTemplateFamilies() {
        let llama3 = ChatTemplate(template: "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n{{ m['content'] | trim }}<|eot_id|>{% endfor %}")
        XCTAssertEqual(llama3.family, .llama3)
        XCTAssertNil(llama3.notice)
        XCTAssertEqual(llama3.render(messages: [(role: "system", content: "S"), (role: "user", content: "Hi")], addGenerationPrompt: true),
                       "<|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                       + "<|start_header_id|>assistant<|end_header_id|>\n\n")
        let gemma = ChatTemplate(template: "{{ bos_token }}{% for message in messages %}<start_of_turn>{{ role }}\n{{ message['content'] | trim }}<end_of_turn>\n{% endfor %}")
        XCTAssertEqual(gemma.family, .gemma)
        XCTAssertEqual(gemma.render(messages: [(role: "system", content: "Be brief."), (role: "user", content: "Hi"),
                                               (role: "assistant", content: "Hello"), (role: "user", content: "Bye")], addGenerationPrompt: true),
                       "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n"
                       + "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n")
        XCTAssertEqual(ChatTemplate(template: "{% for m in messages %}<|im_start|>{{m.role}}{% endfor %}").family, .chatML)
        let none = ChatTemplate(template: nil), odd = ChatTemplate(template: "[INST] {{ m }} [/INST]")
        XCTAssertEqual(none.family, .chatML)
        XCTAssertTrue(none.notice?.contains("no chat template") ?? false, "\(none.notice ?? "nil")")
        XCTAssertEqual(odd.family, .chatML)
        XCTAssertTrue(odd.notice?.contains("none of ChatML, Llama 3, Gemma") ?? false, "\(odd.notice ?? "nil")")
        XCTAssertEqual([ChatTemplate.Family.chatML, .llama3, .gemma].map { ChatTemplate(family: $0).endOfTurn },
                       ["<|im_end|>", "<|eot_id|>", "<end_of_turn>"])
    }

    func testTemplateWithoutDefault() {
        XCTAssertNil(ChatTemplate.defaultSystemPrompt(inTemplate: "{% for m in messages %}<|im_start|>{{m.role}}\n{{m.content}}<|im_end|>\n{% endfor %}"))
        XCTAssertEqual(ChatTemplate().render(messages: [(role: "user", content: "x")], addGenerationPrompt: false),
                       "<|im_start|>user\nx<|im_end|>\n")
    }
}
