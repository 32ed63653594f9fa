import Foundation
import XCTest
@testable import ModelFormats

/// The parsers read from memory (the fuzz targets' way in) exactly as from files.
final class DataEntryPointTests: XCTestCase {
    func testGGUFFromDataReadsLikeTheFile() throws {
        let bytes = GGUFBuilder.tinyLlama().build()
        let url = try makeTempDir(self).appendingPathComponent("tiny.gguf")
        try Data(bytes).write(to: url)
        let fromFile = try GGUFFile(path: url.path), fromData = try GGUFFile(data: Data(bytes), path: "mem.gguf")
        XCTAssertEqual(fromData.path, "mem.gguf")
        XCTAssertEqual(fromData.metadata, fromFile.metadata)
        XCTAssertEqual(fromData.tensors, fromFile.tensors)
        for t in fromData.tensors { XCTAssertEqual(Array(fromData.bytes(of: t)), Array(fromFile.bytes(of: t)), t.name) }
        XCTAssertEqual(try GGUFModel(file: fromData).hyper, try GGUFModel(file: fromFile).hyper)
        assertThrows(try GGUFFile(data: Data(bytes.prefix(30)), path: "cut.gguf"), contains: ["metadata count", "cannot fit"])
        assertThrows(try GGUFFile(data: Data()), contains: ["truncated"])
    }

    func testSafetensorsCheckpointFromData() throws {
        let dir = try makeTempDir(self)
        let shard = dir.appendingPathComponent("model.safetensors")
        try writeSafetensors(shard, SafetensorsTests.tinyTensors(), headerPad: 3)
        let config = try JSONSerialization.data(withJSONObject: SafetensorsTests.config)
        let file = try SafetensorsFile(data: try Data(contentsOf: shard), path: "mem.safetensors")
        XCTAssertEqual(file.entries.count, SafetensorsTests.tinyTensors().count)
        let model = try SafetensorsModel(directory: "mem", shards: [file], configJSON: config, configPath: "mem/config.json")
        try model.validateLlamaShapes()
        try JSONSerialization.data(withJSONObject: SafetensorsTests.config).write(to: dir.appendingPathComponent("config.json"))
        let onDisk = try SafetensorsModel(path: dir.path)
        XCTAssertEqual(model.hyper, onDisk.hyper)
        XCTAssertEqual(try model.weight("blk.0.attn_q.weight").toFloat(), try onDisk.weight("blk.0.attn_q.weight").toFloat())
        assertThrows(try SafetensorsModel(directory: "mem", shards: [file], configJSON: nil, configPath: "mem/config.json"),
                     contains: ["mem/config.json", "config.json not found"])
        assertThrows(try SafetensorsFile(data: Data([1, 2, 3]), path: "tiny.safetensors"), contains: ["tiny.safetensors", "too small"])
        XCTAssertEqual(try SafetensorsModel.shardNames(indexJSON: Data(#"{"weight_map":{"a":"x","b":"y","c":"x"}}"#.utf8), path: "i"), ["x", "y"])
    }

    func testTokenizerJSONFromData() throws {
        var vocab: [String: Int] = [:]
        for b in 0..<256 { vocab[String(ByteLevel.byteToScalar[b])] = b }
        vocab["ab"] = 256
        let json = try JSONSerialization.data(withJSONObject: [
            "added_tokens": [["id": 257, "content": "</s>", "special": true]],
            "pre_tokenizer": ["type": "ByteLevel", "add_prefix_space": false, "use_regex": true],
            "model": ["type": "BPE", "vocab": vocab, "merges": ["a b"]],
        ] as [String: Any])
        let config = Data(#"{"eos_token": "</s>", "add_bos_token": true}"#.utf8)
        let tok = try Tokenizer(huggingFaceJSON: json, config: config, path: "mem/tokenizer.json")
        XCTAssertEqual(tok.encode("ab</s>"), [256, 257])
        XCTAssertEqual(tok.eosId, 257)
        XCTAssertTrue(tok.addBosToken)
        XCTAssertNil(try Tokenizer(huggingFaceJSON: json, config: nil, path: "t").eosId)
        assertThrows(try Tokenizer(huggingFaceJSON: Data("[]".utf8), config: nil, path: "mem/tokenizer.json"),
                     contains: ["mem/tokenizer.json", "not a JSON object"])
    }
}
