import Foundation
import LayerShare
import XCTest

/// Hugging Face directories written by tools/gguf_to_hf.py from the default model cut to 2 layers
/// (`--layers 2`, so conversion and loading stay a few seconds), against the 2-layer GGUF the same
/// run writes with the tensors as stored (`--gguf-out`): logits on the CPU backend, then the F16
/// directory on Vulkan (float weights through matmul_lanes.comp's fused forms on CPU drivers)
/// against the CPU backend, and the BF16 one likewise.
///
/// Tolerances (max |Δlogit| / max |logit| over a 24-token prompt, as BackendComparison reports):
/// - F32 directory vs the GGUF: the same values (dequantized exactly); HF's Q/K row order with
///   rotate-half RoPE against GGUF's interleaved one, so only the rounding order differs: 1e-4, the
///   Vulkan-vs-CPU bound of ModelVulkanVsCPUTests. A wrong un-permutation of Q/K rows or a
///   swapped tensor moves logits by a large share of their range.
/// - F16 directory vs the GGUF: every weight rounded once more to F16 (relative error ≤ 2⁻¹¹), so
///   each product moves by at most 2⁻¹¹·Σ|w·x| and in practice by √K-averaged, far smaller
///   amounts: 3e-4 observed, 3e-3 allowed (observed values are printed).
/// - BF16 directory vs the GGUF: 7 stored mantissa bits instead of 10, a rounding error up to 2⁻⁸,
///   8× F16's: 2e-2 allowed.
/// - F16 and BF16 on Vulkan vs the same directory on CPU: the same stored values, float32 sums in
///   another order: 1e-4.
final class ModelHuggingFaceFloatTests: XCTestCase {
    static let prompt = """
    Printing spread quickly: within fifty years presses were at work in more than two hundred \
    European cities, and books became cheap.
    """

    /// A fresh directory under the temporary directory, removed by the test's teardown.
    func scratch() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("layershare-hf-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    /// Converts the default model's first 2 layers to `dtypes` directories plus the 2-layer GGUF.
    func convert(_ dtypes: [String], into dir: URL) throws -> (gguf: LoadedModel, hf: [String: LoadedModel]) {
        guard FileManager.default.fileExists(atPath: SharedModel.path) else {
            throw ModelLoadError("model not found at \(SharedModel.path): run tools/bootstrap (CI always has it)")
        }
        let small = dir.appendingPathComponent("small.gguf").path
        var hf: [String: LoadedModel] = [:]
        for (i, dtype) in dtypes.enumerated() {
            let out = dir.appendingPathComponent("hf-\(dtype)").path
            _ = try runTool("gguf_to_hf.py", ["--gguf", SharedModel.path, "--layers", "2", "--dtype", dtype, "--out", out]
                                             + (i == 0 ? ["--gguf-out", small] : []))
            hf[dtype] = try LoadedModel(path: out)
        }
        return (try LoadedModel(path: small), hf)
    }

    func compare(_ test: LoadedModel, on device: VulkanDevice? = nil, against reference: LoadedModel, tokens: [Int],
                 _ what: String) throws -> ComparisonReport {
        var options = RunnerOptions()
        options.context = 64
        options.maxChunk = 16  // two prefill chunks
        options.backend = .cpu
        let ref = try RunnerFactory.make(model: reference, options: options)
        if device != nil { options.backend = .vulkan }
        let run = try RunnerFactory.make(model: test, options: options, device: device)
        let report = try BackendComparison.run(test: run, reference: ref, prompt: tokens, greedyTokens: 8)
        let logits = try XCTUnwrap(report.logits)
        print(String(format: "%@: logits abs %.3e rel %.3e; greedy %d/%d", what, logits.maxAbsolute, logits.maxRelative,
                     report.greedyAgreements, report.greedySteps))
        return report
    }

    func testDirectoriesMatchTheGGUFTheyCameFrom() throws {
        let (gguf, hf) = try convert(["f32", "f16", "bf16"], into: try scratch())
        let f32 = try XCTUnwrap(hf["f32"]), f16 = try XCTUnwrap(hf["f16"]), bf16 = try XCTUnwrap(hf["bf16"])
        XCTAssertEqual(f16.weights.hyper.layers, 2)
        XCTAssertEqual(try f16.weights.weight("blk.0.attn_q.weight").type, .f16)
        XCTAssertEqual(try f16.weights.weight("blk.1.ffn_norm.weight").type, .f16, "norm vectors in the directory's type too")
        // The written tokenizer.json encodes like the GGUF's vocabulary.
        let tokens = gguf.tokenizer.encode(Self.prompt)
        XCTAssertEqual(f16.tokenizer.encode(Self.prompt), tokens)
        XCTAssertGreaterThanOrEqual(tokens.count, 20)

        let exact = try compare(f32, against: gguf, tokens: tokens, "HF F32 vs GGUF (CPU)")
        XCTAssertLessThan(try XCTUnwrap(exact.logits).maxRelative, 1e-4)
        XCTAssertEqual(exact.greedyAgreements, exact.greedySteps)
        let rounded = try compare(f16, against: gguf, tokens: tokens, "HF F16 vs GGUF (CPU)")
        XCTAssertLessThan(try XCTUnwrap(rounded.logits).maxRelative, 3e-3)
        let coarse = try compare(bf16, against: gguf, tokens: tokens, "HF BF16 vs GGUF (CPU)")
        XCTAssertLessThan(try XCTUnwrap(coarse.logits).maxRelative, 2e-2)

        let device = try VulkanDevice()
        let vulkan = try compare(f16, on: device, against: f16, tokens: tokens, "HF F16 Vulkan vs CPU")
        XCTAssertLessThan(try XCTUnwrap(vulkan.logits).maxRelative, 1e-4)
        for d in vulkan.layers { XCTAssertLessThan(d.maxRelative, 1e-4, d.name) }
        XCTAssertEqual(vulkan.greedyAgreements, vulkan.greedySteps)
        let vulkanBF16 = try compare(bf16, on: device, against: bf16, tokens: tokens, "HF BF16 Vulkan vs CPU")
        XCTAssertLessThan(try XCTUnwrap(vulkanBF16.logits).maxRelative, 1e-4)
        let messages = device.instance.validationLog?.messages ?? []
        XCTAssertTrue(messages.isEmpty, messages.joined(separator: "\n"))
    }
}
