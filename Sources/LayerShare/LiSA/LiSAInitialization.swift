import Foundation
import ModelFormats

/// The starting point of a LiSA fit (formulation: "starts as direct sharing with rearranged heads"):
/// R the head permutation that best matches this layer's attention maps to the previous layer's,
/// U = 0 (W small random so U receives a gradient), and Wqr/Wkr the original Wq/Wk rows of the
/// r/2 RoPE pairs with the most energy (‖Wq pair‖·‖Wk pair‖ summed over a group's query heads).
public enum LiSAInitialization {
    public struct Options: Equatable, Sendable {
        public var rank: Int
        public var ffnWidth: Int
        /// Rotate the low-rank pairs at their original frequencies (rope_sel); off: no rotation.
        public var ropeSelect: Bool
        public var seed: UInt64
        /// Factor on the initial Wqr (1: the original Wq rows; 0: start exactly at direct sharing with
        /// rearranged heads, Wkr still the original rows so Wqr receives a gradient).
        public var queryInitScale: Float
        public init(rank: Int, ffnWidth: Int, ropeSelect: Bool = true, seed: UInt64 = 1, queryInitScale: Float = 1) {
            self.rank = rank; self.ffnWidth = ffnWidth; self.ropeSelect = ropeSelect; self.seed = seed; self.queryInitScale = queryInitScale
        }
    }

    /// match[h] = head of layer l − 1 whose maps are most like head h's (Hungarian on the cosine
    /// similarity of the probability rows in `samples`).
    public static func headPermutation(_ samples: [LiSAObjective.Sample], heads h: Int) -> [Int] {
        var dot = [[Double]](repeating: .init(repeating: 0, count: h), count: h)
        var normA = [Double](repeating: 0, count: h), normB = normA
        for s in samples {
            for (k, pos) in s.rows.enumerated() {
                for a in 0..<h {
                    let ta = (k * h + a) * s.length
                    for j in 0...pos { normA[a] += Double(expf(2 * s.target[ta + j])) }
                    for b in 0..<h {
                        let tb = (k * h + b) * s.length
                        var acc = 0.0
                        for j in 0...pos { acc += Double(expf(s.target[ta + j] + s.previous[tb + j])) }
                        dot[a][b] += acc
                    }
                }
                for b in 0..<h {
                    let tb = (k * h + b) * s.length
                    for j in 0...pos { normB[b] += Double(expf(2 * s.previous[tb + j])) }
                }
            }
        }
        let score = (0..<h).map { a in (0..<h).map { b in dot[a][b] / max((normA[a] * normB[b]).squareRoot(), 1e-30) } }
        return HeadAssignment.maximize(score)
    }

    /// The RoPE pair indices (0 ..< headDim/2) each KV group keeps, ascending, by energy.
    public static func selectedPairs(wq: [Float], wk: [Float], hyper h: LlamaHyperParameters, pairs: Int) -> [[Int]] {
        let d = h.hiddenSize, dh = h.headDim
        func rowNorm(_ w: [Float], _ row: Int) -> Double {
            var s = 0.0
            for c in 0..<d { s += Double(w[row * d + c]) * Double(w[row * d + c]) }
            return s
        }
        return (0..<h.kvHeads).map { g in
            let energy: [(pair: Int, e: Double)] = (0..<(dh / 2)).map { p in
                let (a, b) = pairRows(p, headDim: dh, layout: h.ropeLayout)
                let k = (rowNorm(wk, g * dh + a) + rowNorm(wk, g * dh + b)).squareRoot()
                var e = 0.0
                for hq in (g * h.groupSize)..<((g + 1) * h.groupSize) {
                    e += (rowNorm(wq, hq * dh + a) + rowNorm(wq, hq * dh + b)).squareRoot() * k
                }
                return (p, e)
            }
            return energy.sorted { $0.e > $1.e || ($0.e == $1.e && $0.pair < $1.pair) }.prefix(pairs).map(\.pair).sorted()
        }
    }

    /// The two rows of a head that form RoPE pair p.
    static func pairRows(_ p: Int, headDim: Int, layout: RopeLayout) -> (Int, Int) {
        layout == .adjacentPairs ? (2 * p, 2 * p + 1) : (p, p + headDim / 2)
    }

    /// Initial parameters of LiSA layer `layer` of `model`.
    public static func initial(layer l: Int, model: WeightSource, samples: [LiSAObjective.Sample], options o: Options) throws -> LiSALayerParameters {
        let h = model.hyper, d = h.hiddenSize, dh = h.headDim, r = o.rank
        let permutation = headPermutation(samples, heads: h.heads)
        var p = LiSALayerParameters.permutation(permutation, layer: l, kvHeads: h.kvHeads, hidden: d, headDim: dh, rank: r, ffnWidth: o.ffnWidth)
        var random = Xoshiro256StarStar(seed: o.seed &+ UInt64(l))
        let spread = 0.1 / Float(h.heads).squareRoot()
        p.ffnIn = p.ffnIn.map { _ in (Float(random.next() >> 40) / Float(1 << 24) * 2 - 1) * spread }
        guard r > 0 else { return p }
        let wq = try model.weight(LlamaTensorName.attnQ(l)).toFloat(), wk = try model.weight(LlamaTensorName.attnK(l)).toFloat()
        let selected = selectedPairs(wq: wq, wk: wk, hyper: h, pairs: r / 2)
        let theta = Double(h.options.ropeTheta(layer: l, global: h.ropeTheta))
        let divisors = h.ropeDivisors(layer: l)  // RoPE scaling (Llama 3.1's rope_freqs): the pairs' own frequencies
        for g in 0..<h.kvHeads {
            for (k, pair) in selected[g].enumerated() {
                let frequency = pow(theta, -2 * Double(pair) / Double(dh)) / Double(divisors?[pair] ?? 1)
                p.ropeFrequencies[g * r / 2 + k] = o.ropeSelect ? Float(frequency) : 0
                let (a, b) = pairRows(pair, headDim: dh, layout: h.ropeLayout)
                for c in 0..<d {
                    p.keyLowRank[(g * r + 2 * k) * d + c] = wk[(g * dh + a) * d + c]
                    p.keyLowRank[(g * r + 2 * k + 1) * d + c] = wk[(g * dh + b) * d + c]
                }
                for hq in (g * h.groupSize)..<((g + 1) * h.groupSize) {
                    for c in 0..<d {
                        p.queryLowRank[(hq * r + 2 * k) * d + c] = o.queryInitScale * wq[(hq * dh + a) * d + c]
                        p.queryLowRank[(hq * r + 2 * k + 1) * d + c] = o.queryInitScale * wq[(hq * dh + b) * d + c]
                    }
                }
            }
        }
        return p
    }
}
