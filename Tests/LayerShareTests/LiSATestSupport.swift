import Foundation
@testable import LayerShare
import XCTest

/// Random LiSA problems for the tests.
enum LiSATestSupport {
    /// Every array of a layer's parameters random (rope frequencies in (0, 1) rad/position).
    static func randomParameters(layer: Int, heads: Int, kvHeads: Int, hidden: Int, headDim: Int, rank: Int, ffnWidth: Int,
                                 scale: Float = 0.5, random: inout TestRandom) -> LiSALayerParameters {
        var p = LiSALayerParameters.permutation(Array(0..<heads), layer: layer, kvHeads: kvHeads, hidden: hidden, headDim: headDim,
                                                rank: rank, ffnWidth: ffnWidth)
        p.headMix = random.floats(p.headMix.count, -scale, scale)
        p.ffnIn = random.floats(p.ffnIn.count, -scale, scale)
        p.ffnInBias = random.floats(p.ffnInBias.count, -scale, scale)
        p.ffnOut = random.floats(p.ffnOut.count, -scale, scale)
        p.outBias = random.floats(p.outBias.count, -scale, scale)
        p.queryLowRank = random.floats(p.queryLowRank.count, -scale, scale)
        p.keyLowRank = random.floats(p.keyLowRank.count, -scale, scale)
        p.ropeFrequencies = random.floats(p.ropeFrequencies.count, 0.01, 1)
        return p
    }

    /// The model's layer `l` parameters as "direct sharing" (identity heads) plus small random
    /// perturbations of every array: near the real operating point, every term active.
    static func perturbedIdentity(layer l: Int, hyper h: LlamaHyperParameters, rank: Int, ffnWidth: Int, random: inout TestRandom) -> LiSALayerParameters {
        var p = LiSALayerParameters.permutation(Array(0..<h.heads), layer: l, kvHeads: h.kvHeads, hidden: h.hiddenSize, headDim: h.headDim,
                                                rank: rank, ffnWidth: ffnWidth)
        let noise = random.floats(p.headMix.count, -0.05, 0.05)
        p.headMix = zip(p.headMix, noise).map(+)
        p.ffnIn = random.floats(p.ffnIn.count, -0.1, 0.1)
        p.ffnInBias = random.floats(p.ffnInBias.count, -0.1, 0.1)
        p.ffnOut = random.floats(p.ffnOut.count, -0.1, 0.1)
        p.outBias = random.floats(p.outBias.count, -0.1, 0.1)
        p.queryLowRank = random.floats(p.queryLowRank.count, -0.05, 0.05)
        p.keyLowRank = random.floats(p.keyLowRank.count, -0.05, 0.05)
        p.ropeFrequencies = (0..<p.ropeFrequencies.count).map { Float(pow(10000.0, -Double($0 % max(1, rank / 2)) / Double(max(1, rank / 2)))) }
        return p
    }

    /// Log-softmax rows of random scores: [rows, heads, stride], row i valid up to position start + i.
    static func randomLogProbabilities(rows: Int, heads: Int, stride: Int, start: Int, random: inout TestRandom) -> [Float] {
        var out = [Float](repeating: .nan, count: rows * heads * stride)
        for i in 0..<rows {
            let n = start + i + 1
            for h in 0..<heads {
                let s = random.floats(n, -4, 4).map(Double.init)
                let m = s.max()!
                let lse = m + log(s.reduce(0) { $0 + exp($1 - m) })
                for j in 0..<n { out[(i * heads + h) * stride + j] = Float(s[j] - lse) }
            }
        }
        return out
    }
}
