import Foundation
import LayerShare
import ModelFormats
import XCTest

/// `PerplexityEvaluation.beginning`: every window starts with BOS in place of its first token (Gemma).
final class PerplexityBOSTests: XCTestCase {
    /// Records the chunks it is given; uniform logits over 16 tokens.
    final class RecordingRunner: ModelRunner {
        let hyper = LlamaHyperParameters(layers: 1, hiddenSize: 4, ffnSize: 4, heads: 1, kvHeads: 1, headDim: 4, vocabSize: 16,
                                         rmsEps: 1e-5, ropeTheta: 10000, contextLength: 8, tiedEmbeddings: true, ropeLayout: .adjacentPairs)
        var chunks: [[Int]] = []
        var position = 0
        let capacity = 8, maxChunk = 8, kvCacheBytes = 0, weightBytes = 0
        var specs: [LayerSpec] { LayerSpec.standard(layers: 1, kvHeads: 1) }
        var deviceMemory: (current: Int, peak: Int)? { nil }
        let backendName = "recording"
        func reset() { position = 0 }
        func rewind(to position: Int) throws { self.position = position }
        func forward(_ tokens: [Int], logits: LogitsRequest, hidden: ((Int, [Float]) -> Void)?,
                     logitsSink: ((Int, [Float]) -> Void)?) throws -> [Float] {
            chunks.append(tokens)
            let rows = [Float](repeating: 0, count: tokens.count * 16)
            if let logitsSink { logitsSink(0, rows); return [] }
            return rows
        }
    }

    func testWindowsStartWithBOSAndScoreTheSameTargets() throws {
        let tokens = [5, 6, 7, 8, 9, 10, 11]
        var evaluation = try PerplexityEvaluation(window: 3)
        let plain = RecordingRunner()
        let plainResult = try evaluation.run(plain, tokens: tokens)
        XCTAssertEqual(plain.chunks, [[5, 6, 7], [8, 9, 10], [11]])

        evaluation.beginning = 2
        let withBOS = RecordingRunner()
        let result = try evaluation.run(withBOS, tokens: tokens)
        XCTAssertEqual(withBOS.chunks, [[2, 6, 7], [2, 9, 10], [2]])
        // The replaced tokens were context only: the same targets are scored.
        XCTAssertEqual(result.count, plainResult.count)
        XCTAssertEqual(result.value, 16, accuracy: 1e-9)
    }
}
