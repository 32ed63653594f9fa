import Foundation
import LayerShare
import VulkanCompute
import XCTest

/// Base class for the Vulkan attention tests: the kernel-test setup (device, library, validation
/// check at tear-down, buffer helpers) plus a `VulkanAttention` per test.
class AttentionTestCase: VulkanKernelTestCase {
    var attention: VulkanAttention!

    override func setUpWithError() throws {
        try super.setUpWithError()
        attention = VulkanAttention(library: library)
    }

    override func tearDownWithError() throws {
        attention = nil
        try super.tearDownWithError()
    }
}

/// Naive float64 causal GQA attention: materialises each score row, masks, soft-maxes, multiplies by V.
/// q [n, heads, d]; k, v [≥ start+n, kvHeads, d]. Returns out [n, heads, d] and probabilities
/// [n, heads, start+n] (0 for masked keys).
func referenceAttention(q: [Float], k: [Float], v: [Float], rows n: Int, start: Int, heads: Int, kvHeads: Int,
                        headDim d: Int, scale: Double) -> (out: [Double], probabilities: [Double]) {
    let total = start + n
    let group = heads / kvHeads
    var out = [Double](repeating: 0, count: n * heads * d)
    var probs = [Double](repeating: 0, count: n * heads * total)
    q.withUnsafeBufferPointer { q in
        k.withUnsafeBufferPointer { k in
            v.withUnsafeBufferPointer { v in
                var scores = [Double](repeating: 0, count: total)
                for i in 0..<n {
                    for h in 0..<heads {
                        let g = h / group
                        let visible = start + i + 1
                        let qb = (i * heads + h) * d
                        var maxScore = -Double.infinity
                        for t in 0..<visible {
                            let kb = (t * kvHeads + g) * d
                            var s = 0.0
                            for c in 0..<d { s += Double(q[qb + c]) * Double(k[kb + c]) }
                            scores[t] = s * scale
                            maxScore = max(maxScore, scores[t])
                        }
                        var sum = 0.0
                        for t in 0..<visible {
                            scores[t] = exp(scores[t] - maxScore)
                            sum += scores[t]
                        }
                        let ob = (i * heads + h) * d
                        let pb = (i * heads + h) * total
                        for t in 0..<visible {
                            let p = scores[t] / sum
                            probs[pb + t] = p
                            let vb = (t * kvHeads + g) * d
                            for c in 0..<d { out[ob + c] += p * Double(v[vb + c]) }
                        }
                    }
                }
            }
        }
    }
    return (out, probs)
}

/// O[h, :] = Σ_t P[h, t] · V[t, h / group, :] in float64 (P [heads, T]).
func referenceApply<P: BinaryFloatingPoint>(_ p: [P], v: [Float], context t: Int, heads: Int, kvHeads: Int, headDim d: Int) -> [Double] {
    let group = heads / kvHeads
    var out = [Double](repeating: 0, count: heads * d)
    for h in 0..<heads {
        for j in 0..<t {
            let w = Double(p[h * t + j])
            let vb = (j * kvHeads + h / group) * d
            for c in 0..<d { out[h * d + c] += w * Double(v[vb + c]) }
        }
    }
    return out
}

/// max |actual − expected| (NaN counts as infinite).
func maxAbsError(_ actual: [Float], _ expected: [Double]) -> Double {
    precondition(actual.count == expected.count)
    var worst = 0.0
    for i in actual.indices {
        let e = abs(Double(actual[i]) - expected[i])
        if !(e <= worst) { worst = e.isNaN ? .infinity : e }
    }
    return worst
}

func maxMagnitude(_ values: [Float]) -> Double {
    values.reduce(0) { max($0, Double(abs($1))) }
}
