import Foundation
@testable import LayerShare
import XCTest

/// The hand-derived gradient of the LiSA fitting objective against central finite differences.
final class LiSAGradientTests: XCTestCase {
    func testEveryGradientMatchesFiniteDifferences() {
        var random = TestRandom("LiSAGradientTests")
        for (rank, ffn) in [(4, 3), (0, 0), (2, 0)] {
            let heads = 4, kvHeads = 2, hidden = 6, headDim = 8, length = 7
            let p = LiSATestSupport.randomParameters(layer: 1, heads: heads, kvHeads: kvHeads, hidden: hidden, headDim: headDim, rank: rank,
                                                     ffnWidth: ffn, random: &random)
            let samples = (0..<2).map { _ -> LiSAObjective.Sample in
                let rows = [2, 4, 6]
                // log P rows for all positions, then the sampled rows' copies [rows, heads, length].
                let all = (0..<2).map { _ in LiSATestSupport.randomLogProbabilities(rows: length, heads: heads, stride: length, start: 0, random: &random) }
                func pick(_ a: [Float]) -> [Float] {
                    rows.flatMap { i in (0..<heads).flatMap { h in (0..<length).map { j in j <= i ? a[(i * heads + h) * length + j] : 0 } } }
                }
                return LiSAObjective.Sample(input: random.floats(length * hidden), rows: rows, length: length, previous: pick(all[0]), target: pick(all[1]))
            }
            let objective = LiSAObjective(samples: samples)
            let (_, gradient) = objective.evaluate(p)
            // One scale for all arrays: c's true gradient is 0 (a per-head constant on every key cancels in
            // the softmax), so its finite differences are pure noise relative to its own size.
            let paths: [WritableKeyPath<LiSALayerParameters, [Float]>] = [\.headMix, \.ffnIn, \.ffnInBias, \.ffnOut, \.outBias, \.queryLowRank, \.keyLowRank]
            let scale = max(paths.flatMap { gradient[keyPath: $0] }.map { abs($0) }.max() ?? 0, 1e-4)
            for (path, name) in [(\LiSALayerParameters.headMix, "R"), (\.ffnIn, "W"), (\.ffnInBias, "b"), (\.ffnOut, "U"), (\.outBias, "c"),
                                 (\.queryLowRank, "Wqr"), (\.keyLowRank, "Wkr")] as [(WritableKeyPath<LiSALayerParameters, [Float]>, String)] {
                let g = gradient[keyPath: path]
                XCTAssertEqual(g.count, p[keyPath: path].count, name)
                guard !g.isEmpty else { continue }
                var worst = 0.0
                for i in g.indices {
                    let eps: Float = 1e-2
                    var plus = p, minus = p
                    plus[keyPath: path][i] += eps
                    minus[keyPath: path][i] -= eps
                    let fd = (objective.evaluate(plus, gradient: false).loss - objective.evaluate(minus, gradient: false).loss) / Double(2 * eps)
                    worst = max(worst, abs(fd - Double(g[i])) / Double(scale))
                }
                print("rank \(rank) ffn \(ffn) d\(name): max |fd − analytic| / max|any grad| = \(worst) over \(g.count) entries")
                // Central differences at eps 1e-2 are O(eps²) ≈ 1e-4 off on this curvature, float32 loss noise
                // adds ~1e-7/eps = 1e-5; a wrong term would be off by O(1).
                XCTAssertLessThan(worst, 5e-3, "d\(name), rank \(rank), ffn \(ffn)")
            }
        }
    }

    /// Adam lowers the objective from the permutation start on a small problem where the target is a
    /// known LiSA layer's own output (so a good fit exists).
    func testFittingRecoversAReachableTarget() {
        var random = TestRandom("LiSAGradientTests.fit")
        let heads = 4, kvHeads = 2, hidden = 6, headDim = 8, length = 9, rows = [3, 5, 8]
        let truth = LiSATestSupport.randomParameters(layer: 1, heads: heads, kvHeads: kvHeads, hidden: hidden, headDim: headDim, rank: 2, ffnWidth: 0,
                                                     random: &random)
        var samples: [LiSAObjective.Sample] = []
        for _ in 0..<3 {
            let previousAll = LiSATestSupport.randomLogProbabilities(rows: length, heads: heads, stride: length, start: 0, random: &random)
            let input = random.floats(length * hidden)
            // Target log P from the true parameters through the runtime kernel (all rows), then sampled.
            var q = [Float](repeating: 0, count: length * heads * 2), k = [Float](repeating: 0, count: length * kvHeads * 2)
            for t in 0..<length {
                for r in 0..<(heads * 2) { q[t * heads * 2 + r] = (0..<hidden).reduce(0) { $0 + truth.queryLowRank[r * hidden + $1] * input[t * hidden + $1] } }
                for r in 0..<(kvHeads * 2) { k[t * kvHeads * 2 + r] = (0..<hidden).reduce(0) { $0 + truth.keyLowRank[r * hidden + $1] * input[t * hidden + $1] } }
            }
            CPUKernels.rotatePairs(&q, rows: length, rowSize: heads * 2, offset: 0, heads: heads, pairs: 1, groupSize: 2, frequencies: truth.ropeFrequencies, startPosition: 0)
            CPUKernels.rotatePairs(&k, rows: length, rowSize: kvHeads * 2, offset: 0, heads: kvHeads, pairs: 1, groupSize: 1, frequencies: truth.ropeFrequencies, startPosition: 0)
            var out = [Float](repeating: 0, count: length * heads * headDim), logs = [Float](repeating: 0, count: length * heads * length)
            let v = [Float](repeating: 0, count: length * kvHeads * headDim)
            CPUKernels.lisaAttention(previous: previousAll, alignment: truth.alignmentTable, queries: q, lowRankKeys: k, v: v, out: &out, logOut: &logs,
                                     shape: .init(heads: heads, kvHeads: kvHeads, headDim: headDim, rank: 2, ffnWidth: 0, rows: length, startPosition: 0,
                                                  stride: length, lowRankScale: 1 / Float(headDim).squareRoot()))
            func pick(_ a: [Float]) -> [Float] {
                rows.flatMap { i in (0..<heads).flatMap { h in (0..<length).map { j in j <= i ? a[(i * heads + h) * length + j] : 0 } } }
            }
            samples.append(.init(input: input, rows: rows, length: length, previous: pick(previousAll), target: pick(logs)))
        }
        var start = LiSALayerParameters.permutation(Array(0..<heads), layer: 1, kvHeads: kvHeads, hidden: hidden, headDim: headDim, rank: 2, ffnWidth: 0,
                                                    ropeFrequencies: truth.ropeFrequencies)
        start.queryLowRank = random.floats(start.queryLowRank.count, -0.1, 0.1)
        start.keyLowRank = random.floats(start.keyLowRank.count, -0.1, 0.1)
        let objective = LiSAObjective(samples: samples)
        XCTAssertLessThan(objective.evaluate(truth, gradient: false).loss, 1e-6, "the true parameters reproduce the target")
        let result = LiSAFitter(objective: objective, options: .init(steps: 300, alignmentRate: 2e-2, lowRankRate: 2e-2)).fit(from: start)
        print("fit: KL \(result.initialLoss) → \(result.loss)")
        XCTAssertLessThan(result.loss, result.initialLoss * 0.1, "300 Adam steps remove most of the KL")
    }
}
