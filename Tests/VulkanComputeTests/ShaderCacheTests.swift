import Foundation
@testable import VulkanCompute
import XCTest

/// A damaged SPIR-V cache entry is detected, recompiled and rewritten: it must not fail every
/// later run until someone deletes it by hand.
final class ShaderCacheTests: VulkanTestCase {
    private func entry(in cache: URL) throws -> URL {
        let files = try FileManager.default.contentsOfDirectory(at: cache, includingPropertiesForKeys: nil).filter { $0.pathExtension == "spv" }
        XCTAssertEqual(files.count, 1)
        return try XCTUnwrap(files.first)
    }

    func testACorruptedCacheEntryIsRebuilt() throws {
        try writeShader("scale.comp", RuntimeTests.scaleShader)
        let cache = scratch.appendingPathComponent("cache")
        let words = try ShaderCompiler(sourceDirectory: scratch, cacheDirectory: cache).spirv("scale.comp", defines: ["FACTOR": "2.0"])
        let file = try entry(in: cache)
        let good = try Data(contentsOf: file)
        // A flipped word in the middle keeps the magic number and the size; a cut keeps whole words.
        var flipped = good
        flipped[good.count / 2] ^= 0x5A
        for damaged in [flipped, good.prefix(good.count - 8), Data([1, 2, 3])] {
            try damaged.write(to: file)
            let compiler = ShaderCompiler(sourceDirectory: scratch, cacheDirectory: cache)
            XCTAssertEqual(try compiler.spirv("scale.comp", defines: ["FACTOR": "2.0"]), words)
            XCTAssertEqual(compiler.compiledCount, 1, "a damaged entry must be recompiled")
            XCTAssertEqual(try Data(contentsOf: file), good, "the entry must be rewritten")
        }
        guard case let .failure(problem) = SPIRVCacheEntry.decode(flipped) else { return XCTFail("a flipped byte passed") }
        XCTAssertEqual(problem.reason, "checksum mismatch")
    }
}
