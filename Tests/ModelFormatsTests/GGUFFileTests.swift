import XCTest
@testable import ModelFormats

final class GGUFRealModelTests: XCTestCase {
    func testRealModelLoadsWithKnownHyperParameters() throws {
        let (file, _) = try RealModel.load()
        XCTAssertEqual(file.version, 3)
        XCTAssertEqual(file.tensors.count, 272)
        XCTAssertEqual(try file.string("general.architecture"), "llama")
        XCTAssertEqual(try file.int("llama.block_count"), 30)
        XCTAssertEqual(try file.string("tokenizer.ggml.pre"), "smollm")
        XCTAssertEqual(try file.bool("tokenizer.ggml.add_bos_token"), false)

        let model = try GGUFModel(file: file)
        let h = model.hyper
        let expected = LlamaHyperParameters(architecture: "llama", layers: 30, hiddenSize: 576, ffnSize: 1536, heads: 9, kvHeads: 3,
                                            headDim: 64, vocabSize: 49152, rmsEps: 1e-5, ropeTheta: 100_000,
                                            contextLength: 8192, tiedEmbeddings: true, ropeLayout: .adjacentPairs)
        XCTAssertEqual(h, expected)
        XCTAssertEqual(h.qSize, 576)
        XCTAssertEqual(h.kvSize, 192)
        XCTAssertEqual(h.groupSize, 3)
        XCTAssertNoThrow(try model.validateLlamaShapes())
        XCTAssertNil(try model.optionalWeight("output.weight"))
    }

    func testRealModelTensorTypesOffsetsAndData() throws {
        let (file, _) = try RealModel.load()
        let model = try GGUFModel(file: file)
        let emb = try model.weight("token_embd.weight")
        XCTAssertEqual(emb.type, .q8_0)
        XCTAssertEqual(emb.shape, [576, 49152])
        XCTAssertEqual(emb.cols, 576)
        XCTAssertEqual(emb.rows, 49152)
        XCTAssertEqual(emb.data.count, 576 / 32 * 34 * 49152)
        // Offset as reported by the gguf Python package.
        XCTAssertEqual(file.tensor(named: "token_embd.weight")?.offset, 1_785_664)
        XCTAssertEqual(try model.weight("blk.0.attn_q.weight").type, .q4_1)
        XCTAssertEqual(try model.weight("blk.29.ffn_down.weight").shape, [1536, 576])
        let norm = try model.weight("blk.0.attn_norm.weight")
        XCTAssertEqual(norm.type, .f32)
        let values = norm.toFloat()
        XCTAssertEqual(values.count, 576)
        XCTAssertTrue(values.allSatisfy { $0.isFinite && abs($0) < 100 })
        XCTAssertTrue(values.contains { $0 != 0 })
        let row = emb.row(1234)
        XCTAssertTrue(row.allSatisfy(\.isFinite))
        XCTAssertTrue(row.contains { $0 != 0 })
        // Every tensor's range is inside the file and tensors do not overlap.
        let sorted = file.tensors.sorted { $0.offset < $1.offset }
        for (a, b) in zip(sorted, sorted.dropFirst()) { XCTAssertLessThanOrEqual(a.offset + a.byteCount, b.offset, a.name) }
        XCTAssertLessThanOrEqual(sorted.last!.offset + sorted.last!.byteCount, file.fileSize)
        assertThrows(try model.weight("blk.30.attn_q.weight"), contains: ["blk.30.attn_q.weight"])
    }

    func testOpenModelDispatchesOnGGUF() throws {
        let m = try openModel(path: try realModelPath())
        XCTAssertTrue(m is GGUFModel)
        XCTAssertEqual(m.hyper.layers, 30)
    }

    func testTypedGetterErrors() throws {
        let (file, _) = try RealModel.load()
        assertThrows(try file.int("llama.nope"), contains: ["missing key llama.nope"])
        assertThrows(try file.int("general.architecture"), contains: ["key general.architecture has type string, expected integer"])
        assertThrows(try file.string("llama.block_count"), contains: ["llama.block_count", "uint32", "expected string"])
        XCTAssertEqual(try file.float("llama.rope.freq_base"), 100_000)
        XCTAssertEqual(try file.stringArray("general.languages"), ["en"])
        XCTAssertNil(try file.optionalInt("llama.nope"))
    }
}

final class GGUFSyntheticTests: XCTestCase {
    private func write(_ g: GGUFBuilder, _ name: String = "t.gguf") throws -> String {
        let url = try makeTempDir(self).appendingPathComponent(name)
        try g.write(to: url)
        return url.path
    }

    func testTinyModelRoundTrip() throws {
        for version: UInt32 in [2, 3] {
            var g = GGUFBuilder.tinyLlama()
            g.version = version
            let file = try GGUFFile(path: try write(g))
            XCTAssertEqual(file.version, version)
            XCTAssertEqual(file.metadata["test.nested"], .array([.array([.uint32(1), .uint32(2)]), .array([])]))
            XCTAssertEqual(file.metadata["test.i64"]?.int, -5)
            XCTAssertEqual(file.metadata["test.f64"]?.float, 2.5)
            XCTAssertEqual(file.metadata["test.bool"]?.bool, true)
            XCTAssertEqual(file.metadata["test.u8"], .uint8(7))
            XCTAssertEqual(try file.int("test.i16"), -300)
            XCTAssertEqual(try file.stringArray("general.tags"), ["a", "b"])
            XCTAssertEqual(file.metadataKeys.first, "general.architecture")
            let model = try GGUFModel(file: file)
            XCTAssertEqual(model.hyper.headDim, 16)
            XCTAssertEqual(model.hyper.vocabSize, 8)
            XCTAssertTrue(model.hyper.tiedEmbeddings)
            try model.validateLlamaShapes()
            let emb = try model.weight("token_embd.weight")
            XCTAssertEqual(emb.row(3), (0..<32).map { Float($0 - 16) * 0.5 })
            let q = try model.weight("blk.0.attn_q.weight").toFloat()
            XCTAssertEqual(q.count, 32 * 32)
            XCTAssertEqual(q[5], Float(5 % 17) * 0.125 - 1)
            XCTAssertEqual(q[1000], Float(1000 % 17) * 0.125 - 1)
        }
    }

    func testEveryTruncationIsAnError() throws {
        var g = GGUFBuilder()
        g.set("general.architecture", .string("llama"))
        g.set("a.u32", .u32(1))
        g.set("a.arr", .array(elementType: 4, [.u32(1), .u32(2), .u32(3)]))
        g.set("a.strs", .array(elementType: 8, [.string("xy"), .string("")]))
        g.tensors = [GGUFBuilder.Tensor(name: "w", dims: [4, 2], type: 0, data: [UInt8](repeating: 1, count: 32))]
        let bytes = g.build()
        let url = try makeTempDir(self).appendingPathComponent("trunc.gguf")
        try Data(bytes).write(to: url)
        XCTAssertNoThrow(try GGUFFile(path: url.path))
        for n in 0..<bytes.count {
            try Data(bytes[0..<n]).write(to: url)
            XCTAssertThrowsError(try GGUFFile(path: url.path), "prefix of \(n) bytes loaded") { error in
                XCTAssertFalse(String(describing: error).isEmpty)
            }
        }
    }

    func testTensorOffsetBeyondFile() throws {
        var g = GGUFBuilder.tinyLlama()
        g.tensors[1].offsetOverride = 1 << 20
        assertThrows(try GGUFFile(path: try write(g)), contains: ["blk.0.attn_norm.weight", "beyond the end of the file"])
        g.tensors[1].offsetOverride = UInt64.max - 31
        assertThrows(try GGUFFile(path: try write(g)), contains: ["blk.0.attn_norm.weight"])
        g.tensors[1].offsetOverride = 4
        assertThrows(try GGUFFile(path: try write(g)), contains: ["blk.0.attn_norm.weight", "alignment"])
    }

    func testAbsurdDimensions() throws {
        var g = GGUFBuilder.tinyLlama()
        g.tensors[2].dims = [1 << 40, 1 << 40]
        assertThrows(try GGUFFile(path: try write(g)), contains: ["blk.0.attn_q.weight", "overflow"])
        g.tensors[2].dims = [1 << 30, 1 << 20]
        assertThrows(try GGUFFile(path: try write(g)), contains: ["blk.0.attn_q.weight", "beyond the end"])
        g.tensors[2].dims = [32, 0]
        assertThrows(try GGUFFile(path: try write(g)), contains: ["blk.0.attn_q.weight", "zero"])
        g.tensors[2].dims = [UInt64.max, 1]
        assertThrows(try GGUFFile(path: try write(g)), contains: ["blk.0.attn_q.weight"])
        g.tensors[2].dims = [1, 1, 1, 1, 1]
        assertThrows(try GGUFFile(path: try write(g)), contains: ["blk.0.attn_q.weight", "dimensions"])
        // Q8_0 rows must be whole blocks.
        g = GGUFBuilder.tinyLlama()
        g.tensors[0].dims = [16, 17]
        assertThrows(try GGUFFile(path: try write(g)), contains: ["token_embd.weight", "block size"])
    }

    func testUnknownTypeID() throws {
        var g = GGUFBuilder.tinyLlama()
        g.tensors[3].type = 11  // Q3_K: known to GGUF, not read here
        assertThrows(try GGUFFile(path: try write(g)), contains: ["blk.0.attn_k.weight", "Q3_K"])
        g.tensors[3].type = 999
        assertThrows(try GGUFFile(path: try write(g)), contains: ["blk.0.attn_k.weight", "999"])
    }

    func testWrongMetadataType() throws {
        var g = GGUFBuilder.tinyLlama()
        g.set("llama.block_count", .string("30"))
        let file = try GGUFFile(path: try write(g))
        assertThrows(try GGUFModel(file: file), contains: ["llama.block_count", "string", "integer"])
        g = GGUFBuilder.tinyLlama()
        g.metadata.removeAll { $0.0 == "llama.embedding_length" }
        assertThrows(try GGUFModel(file: try GGUFFile(path: try write(g))), contains: ["missing key llama.embedding_length"])
    }

    func testInconsistentHyperParameters() throws {
        var g = GGUFBuilder.tinyLlama()
        g.set("llama.attention.head_count_kv", .u32(3))
        assertThrows(try GGUFModel(file: try GGUFFile(path: try write(g))), contains: ["kvHeads", "not divisible"])
        g = GGUFBuilder.tinyLlama()
        g.set("llama.feed_forward_length", .u32(0))
        assertThrows(try GGUFModel(file: try GGUFFile(path: try write(g))), contains: ["ffnSize", "positive"])
        g = GGUFBuilder.tinyLlama()
        g.set("llama.block_count", .u32(1_000_000))
        assertThrows(try GGUFModel(file: try GGUFFile(path: try write(g))), contains: ["layers", "1000000"])
        g = GGUFBuilder.tinyLlama()
        g.set("llama.rope.scaling.type", .string("yarn"))
        assertThrows(try GGUFModel(file: try GGUFFile(path: try write(g))), contains: ["llama.rope.scaling.type", "yarn"])
        g = GGUFBuilder.tinyLlama()
        g.set("general.architecture", .string("falcon"))
        assertThrows(try GGUFModel(file: try GGUFFile(path: try write(g))), contains: ["falcon", "llama, qwen2, gemma3"])
    }

    func testShapeMismatchAndMissingTensor() throws {
        var g = GGUFBuilder.tinyLlama()
        g.tensors[3].dims = [32, 32]
        g.tensors[3].data += g.tensors[3].data
        let model = try GGUFModel(file: try GGUFFile(path: try write(g)))
        assertThrows(try model.validateLlamaShapes(), contains: ["blk.0.attn_k.weight", "[32, 32]", "[32, 16]"])
        g = GGUFBuilder.tinyLlama()
        g.tensors.removeAll { $0.name == "blk.0.ffn_up.weight" }
        let model2 = try GGUFModel(file: try GGUFFile(path: try write(g)))
        assertThrows(try model2.validateLlamaShapes(), contains: ["blk.0.ffn_up.weight"])
    }

    func testHugeStringLength() throws {
        var g = GGUFBuilder.tinyLlama()
        var payload: [UInt8] = []
        payload.le(UInt64(1) << 62)
        payload += Array("abc".utf8)
        g.set("general.huge", .raw(type: 8, bytes: payload))
        assertThrows(try GGUFFile(path: try write(g)), contains: ["general.huge", "4611686018427387904"])
        // A huge key length.
        g = GGUFBuilder.tinyLlama()
        g.metadataCountOverride = 1
        g.metadata = []
        var bytes = g.build()
        bytes.replaceSubrange(24..<32, with: withUnsafeBytes(of: (UInt64(1) << 50).littleEndian, Array.init))
        let url = try makeTempDir(self).appendingPathComponent("k.gguf")
        try Data(bytes).write(to: url)
        assertThrows(try GGUFFile(path: url.path), contains: ["key of metadata entry #0", "1125899906842624"])
    }

    func testHugeArrayCount() throws {
        var g = GGUFBuilder.tinyLlama()
        var payload: [UInt8] = []
        payload.le(UInt32(4))
        payload.le(UInt64(1) << 61)
        g.set("tokenizer.ggml.token_type", .raw(type: 9, bytes: payload))
        assertThrows(try GGUFFile(path: try write(g)), contains: ["tokenizer.ggml.token_type", "2305843009213693952"])
        // Count whose byte size overflows 64 bits.
        payload = []
        payload.le(UInt32(10))
        payload.le(UInt64.max / 4)
        g.set("tokenizer.ggml.token_type", .raw(type: 9, bytes: payload))
        assertThrows(try GGUFFile(path: try write(g)), contains: ["tokenizer.ggml.token_type"])
        // Nested arrays with a bogus element type.
        payload = []
        payload.le(UInt32(77))
        payload.le(UInt64(1))
        g.set("tokenizer.ggml.token_type", .raw(type: 9, bytes: payload))
        assertThrows(try GGUFFile(path: try write(g)), contains: ["tokenizer.ggml.token_type", "77"])
        // Huge tensor and metadata counts.
        g = GGUFBuilder.tinyLlama()
        g.tensorCountOverride = 1 << 40
        assertThrows(try GGUFFile(path: try write(g)), contains: ["tensor count", "1099511627776"])
        g = GGUFBuilder.tinyLlama()
        g.metadataCountOverride = UInt64.max
        assertThrows(try GGUFFile(path: try write(g)), contains: ["metadata count"])
    }

    func testBadMagicVersionAndValueType() throws {
        var g = GGUFBuilder.tinyLlama()
        g.magic = Array("GGML".utf8)
        assertThrows(try GGUFFile(path: try write(g)), contains: ["not a GGUF file"])
        g = GGUFBuilder.tinyLlama()
        g.version = 1
        assertThrows(try GGUFFile(path: try write(g)), contains: ["version 1"])
        g.version = 0x0300_0000 // a big-endian v3 file read as little-endian
        assertThrows(try GGUFFile(path: try write(g)), contains: ["version 50331648"])
        g = GGUFBuilder.tinyLlama()
        g.set("general.weird", .raw(type: 13, bytes: [0, 0, 0, 0]))
        assertThrows(try GGUFFile(path: try write(g)), contains: ["general.weird", "13"])
        g = GGUFBuilder.tinyLlama()
        g.set("general.alignment", .u32(24))
        assertThrows(try GGUFFile(path: try write(g)), contains: ["general.alignment", "24"])
        g = GGUFBuilder.tinyLlama()
        g.metadata.append(("general.name", .string("again")))
        assertThrows(try GGUFFile(path: try write(g)), contains: ["general.name", "twice"])
        g = GGUFBuilder.tinyLlama()
        g.tensors.append(g.tensors[1])
        assertThrows(try GGUFFile(path: try write(g)), contains: ["blk.0.attn_norm.weight", "twice"])
    }

    func testCustomAlignment() throws {
        var g = GGUFBuilder.tinyLlama()
        g.alignment = 64
        g.set("general.alignment", .u32(64))
        let file = try GGUFFile(path: try write(g))
        XCTAssertEqual(file.alignment, 64)
        XCTAssertEqual(file.dataOffset % 64, 0)
        try GGUFModel(file: file).validateLlamaShapes()
    }

    func testMissingAndEmptyFile() throws {
        assertThrows(try GGUFFile(path: "/nonexistent/x.gguf"), contains: ["/nonexistent/x.gguf"])
        let url = try makeTempDir(self).appendingPathComponent("empty.gguf")
        try Data().write(to: url)
        assertThrows(try GGUFFile(path: url.path), contains: ["truncated", "magic"])
        assertThrows(try GGUFFile(path: url.deletingLastPathComponent().path), contains: ["not a regular file"])
    }
}
