import CBLAS
import Foundation

/// The fitting objective of one LiSA layer: mean over sampled query rows and heads of
/// KL(P_true ‖ P_LiSA), with P_LiSA computed from the previous layer's true log-probabilities
/// (teacher forcing) and the layer's own normed input, and its gradient with respect to every
/// trained array (R, W, b, U, c, Wqr, Wkr; the rotation frequencies are fixed), derived by hand:
/// dL/dZ = (P_LiSA − P_true) / (rows · heads) row by row, then back through the alignment FFN and
/// the rotated low-rank product.
public struct LiSAObjective {
    /// One sequence: normed input X [length, hidden], query positions, previous and true log P
    /// [rows, heads, length].
    public struct Sample {
        public let input: [Float]
        public let rows: [Int]
        public let length: Int
        public let previous: [Float]
        public let target: [Float]
        public init(input: [Float], rows: [Int], length: Int, previous: [Float], target: [Float]) {
            self.input = input; self.rows = rows; self.length = length; self.previous = previous; self.target = target
        }
    }

    public let samples: [Sample]
    public init(samples: [Sample]) { self.samples = samples }

    /// Loss and gradient (a parameter set of the same shapes; its `ropeFrequencies` are zero).
    public func evaluate(_ p: LiSALayerParameters, gradient wanted: Bool = true) -> (loss: Double, gradient: LiSALayerParameters) {
        var grad = LiSALayerParameters.permutation(Array(0..<p.heads), layer: p.layer, kvHeads: p.kvHeads, hidden: p.hidden,
                                                   headDim: p.headDim, rank: p.rank, ffnWidth: p.ffnWidth)
        grad.headMix = .init(repeating: 0, count: p.heads * p.heads)
        let totalRows = samples.reduce(0) { $0 + $1.rows.count }
        guard totalRows > 0 else { return (0, grad) }
        let weight = 1 / Float(totalRows * p.heads)
        var loss = 0.0
        for s in samples { loss += accumulate(s, p, weight: weight, into: &grad, wanted: wanted) }
        return (loss * Double(weight), grad)
    }

    /// Adds one sample's gradient (scaled by `weight`) into `g`; returns its summed KL (unscaled).
    private func accumulate(_ s: Sample, _ p: LiSALayerParameters, weight: Float, into g: inout LiSALayerParameters, wanted: Bool) -> Double {
        let h = p.heads, f = p.ffnWidth, r = p.rank, d = p.hidden, hkv = p.kvHeads, group = h / hkv
        let t = s.length, m = s.rows.count, scale = 1 / Float(p.headDim).squareRoot()
        // Rotated low-rank queries of the sampled rows and keys of every position.
        var xs = [Float](repeating: 0, count: m * d)
        for (k, i) in s.rows.enumerated() { for c in 0..<d { xs[k * d + c] = s.input[i * d + c] } }
        var q = [Float](repeating: 0, count: max(1, m * h * r)), key = [Float](repeating: 0, count: max(1, t * hkv * r))
        if r > 0 {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(h * r), Int32(d), 1, xs, Int32(d),
                        p.queryLowRank, Int32(d), 0, &q, Int32(h * r))
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(t), Int32(hkv * r), Int32(d), 1, s.input, Int32(d),
                        p.keyLowRank, Int32(d), 0, &key, Int32(hkv * r))
            rotate(&q, positions: s.rows, heads: h, groupSize: group, rank: r, frequencies: p.ropeFrequencies, sign: 1)
            rotate(&key, positions: Array(0..<t), heads: hkv, groupSize: 1, rank: r, frequencies: p.ropeFrequencies, sign: 1)
        }
        var dq = [Float](repeating: 0, count: q.count), dk = [Float](repeating: 0, count: key.count)
        var gm = [Float](repeating: 0, count: t * h), z = [Float](repeating: 0, count: t * h)
        var u = [Float](repeating: 0, count: max(1, t * f)), act = u, du = u
        var zt = [Float](repeating: 0, count: h * t), dzt = zt, dz = z
        var kl = 0.0
        for (k, pos) in s.rows.enumerated() {
            let n = pos + 1
            for hd in 0..<h { for j in 0..<n { gm[j * h + hd] = s.previous[(k * h + hd) * t + j] } }
            // Forward: z = G·Rᵀ + c + silu(G·Wᵀ + b)·Uᵀ + scale · q·k.
            for j in 0..<n { for hd in 0..<h { z[j * h + hd] = p.outBias[hd] } }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(h), Int32(h), 1, gm, Int32(h), p.headMix, Int32(h), 1, &z, Int32(h))
            if f > 0 {
                for j in 0..<n { for c in 0..<f { u[j * f + c] = p.ffnInBias[c] } }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(f), Int32(h), 1, gm, Int32(h), p.ffnIn, Int32(h), 1, &u, Int32(f))
                for e in 0..<(n * f) { act[e] = u[e] / (1 + expf(-u[e])) }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(h), Int32(f), 1, act, Int32(f), p.ffnOut, Int32(f), 1, &z, Int32(h))
            }
            for hd in 0..<h { for j in 0..<n { zt[hd * t + j] = z[j * h + hd] } }
            if r > 0 {
                q.withUnsafeBufferPointer { qp in key.withUnsafeBufferPointer { kp in zt.withUnsafeMutableBufferPointer { zp in
                    for hd in 0..<h {
                        cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(r), scale, kp.baseAddress! + (hd / group) * r, Int32(hkv * r),
                                    qp.baseAddress! + (k * h + hd) * r, 1, 1, zp.baseAddress! + hd * t, 1)
                    }
                } } }
            }
            // Softmax, KL and dL/dZ.
            for hd in 0..<h {
                let target = (k * h + hd) * t
                let lse = zt.withUnsafeBufferPointer { CPUKernels.logSumExp($0.baseAddress! + hd * t, count: n) }
                for j in 0..<n {
                    let logP = zt[hd * t + j] - lse, logT = s.target[target + j]
                    let pt = expf(logT)
                    if pt > 0 { kl += Double(pt) * Double(logT - logP) }
                    dzt[hd * t + j] = (expf(logP) - pt) * weight
                }
            }
            guard wanted else { continue }
            for hd in 0..<h { for j in 0..<n { dz[j * h + hd] = dzt[hd * t + j] } }
            // R, c: dR += dZᵀ·G, dc += Σ_j dZ.
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(h), Int32(h), Int32(n), 1, dz, Int32(h), gm, Int32(h), 1, &g.headMix, Int32(h))
            for j in 0..<n { for hd in 0..<h { g.outBias[hd] += dz[j * h + hd] } }
            if f > 0 {
                // U: dU += dZᵀ·silu(u); back through silu into W and b.
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(h), Int32(f), Int32(n), 1, dz, Int32(h), act, Int32(f), 1, &g.ffnOut, Int32(f))
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(f), Int32(h), 1, dz, Int32(h), p.ffnOut, Int32(f), 0, &du, Int32(f))
                for e in 0..<(n * f) {
                    let sig = 1 / (1 + expf(-u[e]))
                    du[e] *= sig * (1 + u[e] * (1 - sig))
                }
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(f), Int32(h), Int32(n), 1, du, Int32(f), gm, Int32(h), 1, &g.ffnIn, Int32(h))
                for j in 0..<n { for c in 0..<f { g.ffnInBias[c] += du[j * f + c] } }
            }
            if r > 0 {
                // dq[k, h] += scale · K_gᵀ·dz_h ; dK_g += scale · dz_h ⊗ q[k, h].
                q.withUnsafeBufferPointer { qp in key.withUnsafeBufferPointer { kp in dzt.withUnsafeBufferPointer { dp in
                    dq.withUnsafeMutableBufferPointer { dqp in dk.withUnsafeMutableBufferPointer { dkp in
                        for hd in 0..<h {
                            let gk = (hd / group) * r
                            cblas_sgemv(CblasRowMajor, CblasTrans, Int32(n), Int32(r), scale, kp.baseAddress! + gk, Int32(hkv * r),
                                        dp.baseAddress! + hd * t, 1, 1, dqp.baseAddress! + (k * h + hd) * r, 1)
                            cblas_sger(CblasRowMajor, Int32(n), Int32(r), scale, dp.baseAddress! + hd * t, 1, qp.baseAddress! + (k * h + hd) * r, 1,
                                       dkp.baseAddress! + gk, Int32(hkv * r))
                        }
                    } }
                } } }
            }
        }
        if wanted && r > 0 {
            // Back through the rotations (the transpose of a rotation turns the other way) and the products.
            rotate(&dq, positions: s.rows, heads: h, groupSize: group, rank: r, frequencies: p.ropeFrequencies, sign: -1)
            rotate(&dk, positions: Array(0..<t), heads: hkv, groupSize: 1, rank: r, frequencies: p.ropeFrequencies, sign: -1)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(h * r), Int32(d), Int32(m), 1, dq, Int32(h * r), xs, Int32(d), 1, &g.queryLowRank, Int32(d))
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(hkv * r), Int32(d), Int32(t), 1, dk, Int32(hkv * r), s.input, Int32(d), 1, &g.keyLowRank, Int32(d))
        }
        return kl
    }

    /// Rotates row k (at positions[k]) of [rows, heads, rank] vectors by sign · position · frequency.
    private func rotate(_ x: inout [Float], positions: [Int], heads: Int, groupSize: Int, rank: Int, frequencies: [Float], sign: Float) {
        let freqs = frequencies.map { $0 * sign }
        x.withUnsafeMutableBufferPointer { xp in freqs.withUnsafeBufferPointer { fp in
            for (k, pos) in positions.enumerated() {
                CPUKernels.rotatePairs(xp.baseAddress! + k * heads * rank, rows: 1, rowSize: heads * rank, offset: 0, heads: heads, pairs: rank / 2,
                                       groupSize: groupSize, frequencies: fp.baseAddress!, startPosition: pos)
            }
        } }
    }
}
