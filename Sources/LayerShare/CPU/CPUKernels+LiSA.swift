import CBLAS
import Foundation

extension CPUKernels {
    /// Rotates adjacent pairs (2p, 2p+1) of `heads` vectors of `2·pairs` floats starting at column
    /// `offset` of each row (`rowSize` apart), row r at position startPosition + r, by the angle
    /// position · frequencies[(h / groupSize)·pairs + p] (LiSA's rope_sel on q_r and k_r). As `rope`,
    /// angles and their cos/sin are computed in Double and rounded once.
    public static func rotatePairs(_ x: UnsafeMutablePointer<Float>, rows: Int, rowSize: Int, offset: Int, heads: Int, pairs: Int,
                                   groupSize: Int, frequencies: UnsafePointer<Float>, startPosition: Int) {
        precondition(groupSize > 0 && heads % groupSize == 0 && offset + heads * 2 * pairs <= rowSize)
        for r in 0..<rows {
            let position = Double(startPosition + r)
            for h in 0..<heads {
                let v = x + r * rowSize + offset + h * 2 * pairs
                let f = frequencies + (h / groupSize) * pairs
                for p in 0..<pairs {
                    let angle = position * Double(f[p])
                    let c = Float(cos(angle)), s = Float(sin(angle))
                    let a = v[2 * p], b = v[2 * p + 1]
                    v[2 * p] = a * c - b * s
                    v[2 * p + 1] = a * s + b * c
                }
            }
        }
    }

    /// The shapes of one LiSA attention call (see `lisaAttention`).
    public struct LiSAShape {
        public var heads: Int, kvHeads: Int, headDim: Int, rank: Int, ffnWidth: Int
        public var rows: Int, startPosition: Int
        /// Row stride of the log-probability tensors (≥ startPosition + rows).
        public var stride: Int
        public var lowRankScale: Float
        public init(heads: Int, kvHeads: Int, headDim: Int, rank: Int, ffnWidth: Int, rows: Int, startPosition: Int, stride: Int, lowRankScale: Float) {
            self.heads = heads; self.kvHeads = kvHeads; self.headDim = headDim; self.rank = rank; self.ffnWidth = ffnWidth
            self.rows = rows; self.startPosition = startPosition; self.stride = stride; self.lowRankScale = lowRankScale
        }
    }

    /// One LiSA attention call, float32. For query row i (position p = startPosition + i) and every
    /// key j ≤ p, with g = previous[i, :, j] (all heads):
    ///   z = R·g + U·silu(W·g + b) + c + lowRankScale · (q_r[i, h] · k_r[j, h / group])  per head h,
    /// then P = softmax_j(z), out[i, h] = Σ_j P · V[j, h / group], and logOut[i, h, j] = log P.
    /// - alignment: R, W, b, U, c packed (`LiSALayerParameters.alignmentTable`).
    /// - queries [rows, heads·rank], lowRankKeys [≥ p+1, kvHeads·rank], v [≥ p+1, kvHeads·headDim],
    ///   out [rows, heads·headDim]; previous / logOut [rows, heads, stride].
    public static func lisaAttention(previous: UnsafePointer<Float>, alignment: UnsafePointer<Float>,
                                     queries: UnsafePointer<Float>?, lowRankKeys: UnsafePointer<Float>?,
                                     v: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                                     logOut: UnsafeMutablePointer<Float>?, shape s: LiSAShape) {
        let h = s.heads, f = s.ffnWidth, r = s.rank, group = s.heads / s.kvHeads
        precondition(s.rows >= 1 && s.startPosition + s.rows <= s.stride && (r == 0 || (queries != nil && lowRankKeys != nil)))
        let mix = alignment, ffnIn = alignment + h * h, ffnBias = ffnIn + f * h, ffnOut = ffnBias + f, bias = ffnOut + h * f
        let keys = s.startPosition + s.rows
        let g = UnsafeMutablePointer<Float>.allocate(capacity: keys * h)   // [j, head]
        let z = UnsafeMutablePointer<Float>.allocate(capacity: keys * h)   // [j, head], then [head, j]
        let hidden = UnsafeMutablePointer<Float>.allocate(capacity: max(1, keys * f))
        let zt = UnsafeMutablePointer<Float>.allocate(capacity: keys * h)
        defer { g.deallocate(); z.deallocate(); hidden.deallocate(); zt.deallocate() }
        for i in 0..<s.rows {
            let n = s.startPosition + i + 1
            for head in 0..<h {
                let src = previous + (i * h + head) * s.stride
                for j in 0..<n { g[j * h + head] = src[j] }
            }
            // z = G·Rᵀ + c, then + silu(G·Wᵀ + b)·Uᵀ.
            for j in 0..<n { (z + j * h).update(from: bias, count: h) }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(h), Int32(h), 1, g, Int32(h), mix, Int32(h), 1, z, Int32(h))
            if f > 0 {
                for j in 0..<n { (hidden + j * f).update(from: ffnBias, count: f) }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(f), Int32(h), 1, g, Int32(h), ffnIn, Int32(h), 1, hidden, Int32(f))
                for k in 0..<(n * f) { hidden[k] = hidden[k] / (1 + expf(-hidden[k])) }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(h), Int32(f), 1, hidden, Int32(f), ffnOut, Int32(f), 1, z, Int32(h))
            }
            for head in 0..<h {
                let row = zt + head * n
                for j in 0..<n { row[j] = z[j * h + head] }
                if r > 0, let queries, let lowRankKeys {
                    // row += scale · K_r[0..<n, group] · q_r[i, head]
                    cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(r), s.lowRankScale,
                                lowRankKeys + (head / group) * r, Int32(s.kvHeads * r), queries + (i * h + head) * r, 1, 1, row, 1)
                }
                let lse = logSumExp(row, count: n)
                if let logOut {
                    let dst = logOut + (i * h + head) * s.stride
                    for j in 0..<n { dst[j] = row[j] - lse }
                }
                for j in 0..<n { row[j] = expf(row[j] - lse) }
                // out[i, head] = Vᵀ[0..<n, group] · P
                cblas_sgemv(CblasRowMajor, CblasTrans, Int32(n), Int32(s.headDim), 1, v + (head / group) * s.headDim,
                            Int32(s.kvHeads * s.headDim), row, 1, 0, out + (i * h + head) * s.headDim, 1)
            }
        }
    }
}
