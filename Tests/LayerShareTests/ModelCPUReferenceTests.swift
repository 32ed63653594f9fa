import Foundation
import LayerShare
import XCTest

/// The CPU path against tools/reference_forward.py, an independent float64 NumPy forward of the same GGUF.
final class ModelCPUReferenceTests: XCTestCase {
    func testCPULogitsMatchFloat64Reference() throws {
        let model = try SharedModel.model()
        let tokens = model.tokenizer.encode("The quick brown fox jumps over the lazy dog. In 1969, Apollo 11 landed on the Moon.")
        var options = RunnerOptions()
        options.backend = .cpu
        options.context = 64
        let runner = try RunnerFactory.make(model: model, options: options)
        let logits = try runner.forward(tokens, logits: .all)

        let out = FileManager.default.temporaryDirectory.appendingPathComponent("ref-\(UUID().uuidString).npy")
        defer { try? FileManager.default.removeItem(at: out) }
        _ = try runTool("reference_forward.py", ["--model", SharedModel.path, "--tokens", tokens.map(String.init).joined(separator: ","),
                                                 "--output", out.path])
        let (shape, reference) = try NpyReader.read(out)
        XCTAssertEqual(shape, [tokens.count, model.hyper.vocabSize])
        let diff = TensorDifference(name: "logits", test: logits, reference: reference)
        print("CPU vs float64 reference: max abs \(diff.maxAbsolute), max rel \(diff.maxRelative)")
        // float32 activations through 30 layers: rounding grows to ~1e-5..1e-4 of the logit range;
        // 1e-3 leaves margin while still catching any real bug (a wrong op moves logits by O(1)).
        XCTAssertLessThan(diff.maxRelative, 1e-3)
        // Same top-1 everywhere.
        let vocab = model.hyper.vocabSize
        for r in 0..<tokens.count {
            let a = logits[(r * vocab)..<((r + 1) * vocab)].withContiguousStorageIfAvailable { Sampler.argmax($0) }!
            let b = reference[(r * vocab)..<((r + 1) * vocab)].withContiguousStorageIfAvailable { Sampler.argmax($0) }!
            XCTAssertEqual(a, b, "top-1 differs at row \(r)")
        }
    }
}
