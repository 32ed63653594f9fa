import Foundation
@testable import LayerShare
import XCTest

/// The CPU LiSA kernels against float64 references that follow the formulation literally.
final class LiSAKernelTests: XCTestCase {
    /// lisaAttention (output and emitted log P) equals a Double reference that materialises the
    /// alignment of every (row, key) pair, the low-rank scores and the softmax.
    func testLiSAAttentionMatchesMaterialisedReference() throws {
        var random = TestRandom("LiSAKernelTests.reference")
        for (rank, ffn, start) in [(4, 3, 5), (0, 0, 0), (6, 0, 9), (0, 5, 2)] {
            let heads = 6, kvHeads = 2, headDim = 5, rows = 4, stride = start + rows + 3, group = heads / kvHeads
            let p = LiSATestSupport.randomParameters(layer: 1, heads: heads, kvHeads: kvHeads, hidden: 3, headDim: headDim, rank: rank,
                                                     ffnWidth: ffn, random: &random)
            let previous = LiSATestSupport.randomLogProbabilities(rows: rows, heads: heads, stride: stride, start: start, random: &random)
            let keys = start + rows
            let q = random.floats(max(1, rows * heads * rank)), kr = random.floats(max(1, keys * kvHeads * rank))
            let v = random.floats(keys * kvHeads * headDim)
            var out = [Float](repeating: .nan, count: rows * heads * headDim), logs = [Float](repeating: .nan, count: rows * heads * stride)
            let scale = 1 / Float(headDim).squareRoot()
            let shape = CPUKernels.LiSAShape(heads: heads, kvHeads: kvHeads, headDim: headDim, rank: rank, ffnWidth: ffn, rows: rows,
                                             startPosition: start, stride: stride, lowRankScale: scale)
            p.alignmentTable.withUnsafeBufferPointer { a in
                CPUKernels.lisaAttention(previous: previous, alignment: a.baseAddress!, queries: rank > 0 ? q : nil, lowRankKeys: rank > 0 ? kr : nil,
                                         v: v, out: &out, logOut: &logs, shape: shape)
            }
            // Reference.
            var maxOut = 0.0, maxLog = 0.0
            for i in 0..<rows {
                let n = start + i + 1
                var z = [[Double]](repeating: [Double](repeating: 0, count: n), count: heads)
                for j in 0..<n {
                    let g = (0..<heads).map { Double(previous[(i * heads + $0) * stride + j]) }
                    let hidden = (0..<ffn).map { c -> Double in
                        let u = Double(p.ffnInBias[c]) + (0..<heads).reduce(0.0) { $0 + Double(p.ffnIn[c * heads + $1]) * g[$1] }
                        return u / (1 + exp(-u))
                    }
                    for h in 0..<heads {
                        var a = Double(p.outBias[h])
                        for k in 0..<heads { a += Double(p.headMix[h * heads + k]) * g[k] }
                        for c in 0..<ffn { a += Double(p.ffnOut[h * ffn + c]) * hidden[c] }
                        var d = 0.0
                        for e in 0..<rank { d += Double(q[(i * heads + h) * rank + e]) * Double(kr[(j * kvHeads + h / group) * rank + e]) }
                        z[h][j] = a + Double(scale) * d
                    }
                }
                for h in 0..<heads {
                    let m = z[h].max()!
                    let lse = m + log(z[h].reduce(0) { $0 + exp($1 - m) })
                    for j in 0..<n { maxLog = max(maxLog, abs(Double(logs[(i * heads + h) * stride + j]) - (z[h][j] - lse))) }
                    for c in 0..<headDim {
                        var o = 0.0
                        for j in 0..<n { o += exp(z[h][j] - lse) * Double(v[(j * kvHeads + h / group) * headDim + c]) }
                        maxOut = max(maxOut, abs(Double(out[(i * heads + h) * headDim + c]) - o))
                    }
                }
            }
            print("LiSA rank \(rank) ffn \(ffn) start \(start): |out − ref| \(maxOut), |log P − ref| \(maxLog)")
            // float32 sums of ≤ 12 terms of size ≤ ~10: errors of a few ulp of 10 (≈ 1e-6 each).
            XCTAssertLessThan(maxOut, 1e-5)
            XCTAssertLessThan(maxLog, 2e-5)
        }
    }

    /// With R an exact head permutation, no FFN, no bias and no low-rank term, a LiSA layer is plain
    /// sharing with those heads: its output is the previous layer's probabilities (permuted) times
    /// its own V, and the log P it emits is the permuted input.
    func testPermutationReproducesPlainSharing() throws {
        var random = TestRandom("LiSAKernelTests.permutation")
        let heads = 6, kvHeads = 3, headDim = 4, rows = 3, start = 4, stride = 9
        for permutation in [Array(0..<heads), [2, 0, 1, 5, 3, 4]] {
            let p = LiSALayerParameters.permutation(permutation, layer: 1, kvHeads: kvHeads, hidden: 2, headDim: headDim, rank: 0, ffnWidth: 0)
            let previous = LiSATestSupport.randomLogProbabilities(rows: rows, heads: heads, stride: stride, start: start, random: &random)
            let v = random.floats((start + rows) * kvHeads * headDim)
            var out = [Float](repeating: .nan, count: rows * heads * headDim), logs = [Float](repeating: .nan, count: rows * heads * stride)
            let shape = CPUKernels.LiSAShape(heads: heads, kvHeads: kvHeads, headDim: headDim, rank: 0, ffnWidth: 0, rows: rows,
                                             startPosition: start, stride: stride, lowRankScale: 0.5)
            CPUKernels.lisaAttention(previous: previous, alignment: p.alignmentTable, queries: nil, lowRankKeys: nil, v: v, out: &out,
                                     logOut: &logs, shape: shape)
            for i in 0..<rows {
                let keys = start + i + 1
                // Shared Attention's own kernel on the permuted probability rows of this query row.
                var probabilities = [Float](repeating: 0, count: heads * keys)
                for h in 0..<heads { for j in 0..<keys { probabilities[h * keys + j] = exp(previous[(i * heads + permutation[h]) * stride + j]) } }
                var expected = [Float](repeating: .nan, count: heads * headDim)
                CPUKernels.applyProbabilities(probabilities, v: v, out: &expected, queryCount: 1, keyCount: keys, heads: heads, kvHeads: kvHeads, headDim: headDim)
                for e in 0..<(heads * headDim) { XCTAssertEqual(out[i * heads * headDim + e], expected[e], accuracy: 2e-6) }
                for h in 0..<heads {
                    for j in 0..<keys {
                        XCTAssertEqual(logs[(i * heads + h) * stride + j], previous[(i * heads + permutation[h]) * stride + j], accuracy: 2e-6)
                    }
                }
            }
        }
    }

    /// rotatePairs turns pair p of head h by position · frequency[(h / group)·pairs + p] (Double reference).
    func testRotatePairsMatchesReference() {
        var random = TestRandom("LiSAKernelTests.rotate")
        let rows = 3, heads = 4, pairs = 3, group = 2, offset = 5, rowSize = offset + heads * 2 * pairs + 2, start = 1234
        let x = random.floats(rows * rowSize), freqs = random.floats((heads / group) * pairs, 0, 1)
        var y = x
        CPUKernels.rotatePairs(&y, rows: rows, rowSize: rowSize, offset: offset, heads: heads, pairs: pairs, groupSize: group,
                               frequencies: freqs, startPosition: start)
        for r in 0..<rows {
            for c in 0..<rowSize where c < offset || c >= offset + heads * 2 * pairs { XCTAssertEqual(y[r * rowSize + c], x[r * rowSize + c]) }
            for h in 0..<heads {
                for p in 0..<pairs {
                    let angle = Double(start + r) * Double(freqs[(h / group) * pairs + p])
                    let i = r * rowSize + offset + h * 2 * pairs + 2 * p
                    let a = Double(x[i]), b = Double(x[i + 1])
                    XCTAssertEqual(Double(y[i]), a * cos(angle) - b * sin(angle), accuracy: 1e-6)
                    XCTAssertEqual(Double(y[i + 1]), a * sin(angle) + b * cos(angle), accuracy: 1e-6)
                }
            }
        }
    }

    /// A standard layer's emitted log P is the log of its probabilities (where those are not tiny).
    func testEmittedLogProbabilitiesAreLogOfProbabilities() {
        var random = TestRandom("LiSAKernelTests.emission")
        let n = 5, start = 3, keys = start + n, heads = 4, kvHeads = 2, d = 8, stride = keys + 2
        let q = random.floats(n * heads * d, -2, 2), k = random.floats(keys * kvHeads * d, -2, 2), v = random.floats(keys * kvHeads * d)
        var out = [Float](repeating: 0, count: n * heads * d), p = [Float](repeating: 0, count: heads * n * keys)
        var logs = [Float](repeating: .nan, count: n * heads * stride)
        CPUKernels.attention(q: q, k: k, v: v, out: &out, queryCount: n, keyCount: keys, heads: heads, kvHeads: kvHeads, headDim: d,
                             queryStart: start, probabilitiesOut: &p, logProbabilitiesOut: &logs, logStride: stride)
        for i in 0..<n {
            for h in 0..<heads {
                for j in 0...(start + i) {
                    let prob = p[(h * n + i) * keys + j]
                    XCTAssertEqual(exp(Double(logs[(i * heads + h) * stride + j])), Double(prob), accuracy: 1e-6 + 1e-5 * Double(prob))
                }
            }
        }
    }
}
