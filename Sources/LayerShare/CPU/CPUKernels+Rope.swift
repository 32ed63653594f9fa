import Foundation

extension CPUKernels {
    /// Rotary position embedding, in place, on x [rows, heads, headDim]; row i is at absolute
    /// position `startPosition + i`. Pair i (0 ≤ i < headDim/2) is rotated by the angle
    /// pos · theta^(−2i/headDim) / divisors[i] (RoPE scaling; nil: all 1); `layout` says which two
    /// elements form pair i.
    ///
    /// Angles and their cos/sin are computed in Double and rounded once to float32: at long
    /// positions a float32 angle would already be off by ~pos·2⁻²⁴ rad, and a reference should
    /// not carry that error (GPU kernels that compute angles in float32 need looser tolerances).
    public static func rope(_ x: UnsafeMutablePointer<Float>, rows: Int, heads: Int, headDim: Int,
                            startPosition: Int, theta: Float, divisors: [Float]? = nil, layout: RopeLayout) {
        precondition(headDim > 0 && headDim % 2 == 0, "RoPE needs an even head dimension, got \(headDim)")
        precondition(startPosition >= 0, "negative RoPE position")
        let half = headDim / 2
        precondition(divisors == nil || divisors!.count == half, "RoPE needs \(half) frequency divisors")
        let inverseFrequency = (0..<half).map { i in
            pow(Double(theta), -2 * Double(i) / Double(headDim)) / Double(divisors?[i] ?? 1)
        }
        var cosines = [Float](repeating: 0, count: half)
        var sines = [Float](repeating: 0, count: half)
        for r in 0..<rows {
            let position = Double(startPosition + r)
            for i in 0..<half {
                let angle = position * inverseFrequency[i]
                cosines[i] = Float(cos(angle))
                sines[i] = Float(sin(angle))
            }
            for h in 0..<heads {
                let v = x + (r * heads + h) * headDim
                for i in 0..<half {
                    let (first, second) = layout == .adjacentPairs ? (2 * i, 2 * i + 1) : (i, i + half)
                    let a = v[first], b = v[second]
                    v[first] = a * cosines[i] - b * sines[i]
                    v[second] = a * sines[i] + b * cosines[i]
                }
            }
        }
    }
}
