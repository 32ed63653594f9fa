import Foundation
@testable import ModelFormats
import XCTest

/// gemma3 metadata read into `ArchitectureOptions`, and what is refused, on a tiny GGUF.
final class Gemma3HyperParameterTests: XCTestCase {
    private func gemma(_ change: (inout GGUFBuilder) -> Void = { _ in }) throws -> GGUFFile {
        var g = GGUFBuilder.tinyLlama(layers: 1)
        g.metadata = g.metadata.map { key, value in (key.hasPrefix("llama.") ? "gemma3." + key.dropFirst(6) : key, value) }
        g.set("general.architecture", .string("gemma3"))
        g.set("gemma3.attention.sliding_window", .u32(4))
        change(&g)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("gemma3-\(UUID().uuidString).gguf")
        try g.write(to: url)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return try GGUFFile(path: url.path)
    }

    func testOptionsFollowLlamaCppsGemma3() throws {
        let h = try LlamaHyperParameters(gguf: gemma())
        XCTAssertEqual(h.architecture, "gemma3")
        XCTAssertEqual(h.ropeLayout, .halfRotation)
        let o = h.options
        XCTAssertEqual(o.embeddingScale, Float(32).squareRoot())
        XCTAssertTrue(o.qkNorm && o.postNorms)
        XCTAssertEqual(o.activation, .geluTanh)
        XCTAssertEqual(o.attentionScale(headDim: h.headDim), 1 / 4)  // head dim 16
        XCTAssertEqual(o.slidingWindow, 4)
        XCTAssertEqual((0..<12).map { o.window(layer: $0) }, [4, 4, 4, 4, 4, nil, 4, 4, 4, 4, 4, nil])
        XCTAssertEqual(o.ropeTheta(layer: 0, global: 1e6), 10000)
        XCTAssertEqual(o.ropeTheta(layer: 11, global: 1e6), 1e6)
        // Llama is untouched by the options.
        let llama = ArchitectureOptions.llama
        XCTAssertNil(llama.window(layer: 5))
        XCTAssertEqual(llama.attentionScale(headDim: 64), 1 / 8)
        XCTAssertEqual(llama.ropeTheta(layer: 3, global: 5e5), 5e5)
    }

    func testSoftCappingIsRefusedByName() throws {
        let file = try gemma { $0.set("gemma3.final_logit_softcapping", .f32(30)) }
        assertThrows(try LlamaHyperParameters(gguf: file), contains: ["gemma3.final_logit_softcapping", "soft-capping"])
    }

    func testBadWindowAndUnknownArchitecture() throws {
        assertThrows(try LlamaHyperParameters(gguf: gemma { $0.set("gemma3.attention.sliding_window", .u32(0)) }),
                     contains: ["slidingWindow", "positive"])
        let other = try gemma { $0.set("general.architecture", .string("mistral")) }
        assertThrows(try LlamaHyperParameters(gguf: other), contains: ["mistral", "llama, qwen2, gemma3"])
    }
}
