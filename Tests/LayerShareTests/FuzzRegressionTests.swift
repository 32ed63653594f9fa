import Foundation
import LayerShare
import ModelFormats
import XCTest

/// Inputs the fuzz targets of Fuzz/ crashed on (Fixtures/fuzz/<target>/, also seeds of tools/fuzz):
/// each must now give a clear error, or work, instead.
final class FuzzRegressionTests: XCTestCase {
    static func fixture(_ target: String, _ name: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/fuzz/\(target)/\(name)"))
    }

    private func analysisError(_ name: String) throws -> String? {
        do {
            let a = try AttentionSimilarity.decode(try Self.fixture("analysis", name), source: name)
            _ = a.summary(threshold: 0.7)
            return nil
        } catch let e as ModelLoadError {
            return e.description
        }
    }

    /// A row of one matrix shorter than the layer count: the summary indexed past it.
    func testAnalysisWithRaggedJensenShannonIsRejected() throws {
        XCTAssertEqual(try analysisError("ragged-jensen-shannon.json"),
                       "ragged-jensen-shannon.json is not an analysis file: jensenShannon[3] has 1 entries for 4 layers")
    }

    /// The span search walked rows of the cosine matrix past their end.
    func testAnalysisWithRaggedCosineIsRejected() throws {
        XCTAssertEqual(try analysisError("ragged-cosine.json"),
                       "ragged-cosine.json is not an analysis file: cosine[1] has 1 entries for 4 layers")
    }

    func testAnalysisWithFewerJensenShannonRowsIsRejected() throws {
        XCTAssertEqual(try analysisError("jensen-shannon-fewer-rows.json"),
                       "jensen-shannon-fewer-rows.json is not an analysis file: jensenShannon has 2 rows, cosine has 4")
    }

    /// `plan sa --max-ppl-increase` drops the analysed tokens from the held-out text: dropFirst(-1) traps.
    func testAnalysisWithNegativeTokensUsedIsRejected() throws {
        XCTAssertEqual(try analysisError("negative-tokens-used.json"),
                       "negative-tokens-used.json is not an analysis file: settings.tokensUsed is -1")
    }

    /// A span to layer 5 000 000 000: validation listed every layer out of range, one problem each,
    /// until memory ran out. Now one problem per run of such layers, at once.
    func testPlanWithASpanOfBillionsOfLayersIsRejectedAtOnce() throws {
        let plan = try SharingPlan.decode(try Self.fixture("sharing-plan", "span-of-billions.json"), source: "plan")
        let smolLM2 = LlamaHyperParameters(layers: 30, hiddenSize: 576, ffnSize: 1536, heads: 9, kvHeads: 3, headDim: 64,
                                           vocabSize: 49152, rmsEps: 1e-5, ropeTheta: 100_000, contextLength: 8192,
                                           tiedEmbeddings: true, ropeLayout: .adjacentPairs)
        XCTAssertThrowsError(try plan.validate(against: ModelIdentity(hyper: smolLM2, weightsHash: nil, file: nil), source: "plan")) {
            XCTAssertEqual(($0 as? SharingPlanError)?.problems.map(\.description),
                           ["layer 30: span 0 (3-5000000000) names layers 30-5000000000, out of range 0..<30"])
        }
    }

    /// The fuzz target asks for spans of at least 0 layers (as `--min-span 0` does): a source whose next
    /// layer is below the threshold gave an empty span, and `first...first - 1` trapped.
    func testCandidateSpansOfMinimumLengthZeroHaveALayer() throws {
        let a = try AttentionSimilarity.decode(try Self.fixture("analysis", "four-layers.json"), source: "four-layers.json")
        XCTAssertEqual(a.candidateSpans(threshold: 0.95, minLength: 0).map(\.range), [])
        XCTAssertEqual(a.candidateSpans(threshold: 0.5, minLength: 0).map(\.range), [2...2])
    }
}
