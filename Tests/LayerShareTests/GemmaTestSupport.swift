import Foundation
import LayerShare
import ModelFormats
import XCTest

/// Gemma-3 270M (fetched by tools/bootstrap into models/), loaded once per test process.
enum SharedGemma {
    static let path: String = {
        if let env = ProcessInfo.processInfo.environment["LAYERSHARE_GEMMA_MODEL"], !env.isEmpty { return env }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent("models/gemma-3-270m-q4_k_m.gguf").path
    }()
    static let loaded: Result<LoadedModel, Error> = Result {
        guard FileManager.default.fileExists(atPath: path) else {
            throw ModelLoadError("Gemma-3 model not found at \(path): run tools/bootstrap (CI always has it)")
        }
        return try LoadedModel(path: path)
    }

    static func model() throws -> LoadedModel { try loaded.get() }

    /// Float64 reference logits [tokens, vocab] from tools/reference_forward.py.
    static func referenceLogits(_ tokens: [Int], extra: [String] = []) throws -> [Float] {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("gemma-ref-\(UUID().uuidString).npy")
        defer { try? FileManager.default.removeItem(at: out) }
        _ = try runTool("reference_forward.py", ["--model", path, "--tokens", tokens.map(String.init).joined(separator: ","),
                                                 "--output", out.path] + extra)
        let (shape, values) = try NpyReader.read(out)
        guard shape == [tokens.count, try model().hyper.vocabSize] else { throw ModelLoadError("reference logits have shape \(shape)") }
        return values
    }
}

/// A model's weights with its hyper-parameters changed (e.g. a short sliding window for a test).
final class OverriddenHyper: WeightSource {
    let base: WeightSource
    let hyper: LlamaHyperParameters
    init(_ base: WeightSource, _ change: (inout LlamaHyperParameters) -> Void) {
        self.base = base
        var h = base.hyper
        change(&h)
        hyper = h
    }
    var tensorNames: [String] { base.tensorNames }
    func weight(_ name: String) throws -> WeightTensor { try base.weight(name) }
}

/// Rows `rows` of a row-major [_, vocab] matrix.
func logitRows(_ all: [Float], _ rows: Range<Int>, vocab: Int) -> [Float] { Array(all[(rows.lowerBound * vocab)..<(rows.upperBound * vocab)]) }

func assertSameTopOne(_ a: [Float], _ b: [Float], vocab: Int, file: StaticString = #filePath, line: UInt = #line) {
    for r in 0..<(a.count / vocab) {
        let x = a[(r * vocab)..<((r + 1) * vocab)].withContiguousStorageIfAvailable { Sampler.argmax($0) }!
        let y = b[(r * vocab)..<((r + 1) * vocab)].withContiguousStorageIfAvailable { Sampler.argmax($0) }!
        XCTAssertEqual(x, y, "top-1 differs at row \(r)", file: file, line: line)
    }
}
