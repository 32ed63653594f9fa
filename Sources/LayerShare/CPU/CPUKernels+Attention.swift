import CBLAS

extension CPUKernels {
    /// Naive causal grouped-query attention, float32.
    ///
    /// - q: [n, heads, headDim]; k, v: [keyCount, kvHeads, headDim]; out: [n, heads, headDim].
    /// - Query row i sits at absolute position `queryStart + i` and sees keys 0...queryStart+i
    ///   (so `queryStart + n ≤ keyCount`); keys past that are masked out.
    /// - Head h reads kv head h / (heads / kvHeads). Scores are scaled by `scale` (default
    ///   1/sqrt(headDim)) and soft-maxed in float32 with the row maximum subtracted.
    /// - window: a sliding window; query position p then sees only keys p − window < k ≤ p.
    /// - probabilitiesOut: optional [heads, n, keyCount] buffer that receives the attention
    ///   probabilities, 0 in masked entries (for the sharing features that reuse them).
    /// - logProbabilitiesOut: optional [n, heads, logStride] buffer that receives log P (score minus
    ///   the row's log-sum-exp) for the visible keys of each row (what a LiSA layer reads).
    public static func attention(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                 out: UnsafeMutablePointer<Float>, queryCount n: Int, keyCount: Int,
                                 heads: Int, kvHeads: Int, headDim: Int, queryStart: Int,
                                 scale: Float? = nil, window: Int? = nil,
                                 probabilitiesOut: UnsafeMutablePointer<Float>? = nil,
                                 logProbabilitiesOut: UnsafeMutablePointer<Float>? = nil, logStride: Int = 0) {
        precondition(window.map { $0 > 0 } ?? true, "attention window must be positive")
        checkAttentionShape(n: n, keyCount: keyCount, heads: heads, kvHeads: kvHeads, headDim: headDim)
        precondition(queryStart >= 0 && queryStart + n <= keyCount,
                     "query rows \(queryStart)..<\(queryStart + n) need that many keys, have \(keyCount)")
        guard n > 0 else { return }
        let group = heads / kvHeads
        // Keys at or beyond queryStart + n are invisible to every row: skip them in the product.
        let visibleKeys = queryStart + n
        let scale = scale ?? 1 / Float(headDim).squareRoot()
        let scratch: UnsafeMutablePointer<Float>? = probabilitiesOut == nil ? .allocate(capacity: n * keyCount) : nil
        defer { scratch?.deallocate() }

        for h in 0..<heads {
            let g = h / group
            let scores = probabilitiesOut.map { $0 + h * n * keyCount } ?? scratch!
            // scores[n, visibleKeys] (leading dimension keyCount) = scale · Q_h · K_gᵀ
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(visibleKeys), Int32(headDim),
                        scale, q + h * headDim, Int32(heads * headDim),
                        k + g * headDim, Int32(kvHeads * headDim),
                        0, scores, Int32(keyCount))
            for i in 0..<n {
                let row = scores + i * keyCount
                let visible = queryStart + i + 1
                let first = window.map { max(0, visible - $0) } ?? 0
                if let logProbabilitiesOut {
                    precondition(window == nil && logStride >= visible, "log-probabilities need every key of a row")
                    let lse = logSumExp(row, count: visible)
                    let dst = logProbabilitiesOut + (i * heads + h) * logStride
                    for j in 0..<visible { dst[j] = row[j] - lse }
                }
                softmaxRow(row + first, count: visible - first)
                row.update(repeating: 0, count: first)
                (row + visible).update(repeating: 0, count: keyCount - visible)
            }
            // Masked probabilities are exactly 0, so multiplying by all keys is still causal (and windowed).
            multiplyProbabilities(scores, rowStride: keyCount, v: v + g * headDim, kvStride: kvHeads * headDim,
                                  out: out + h * headDim, outStride: heads * headDim,
                                  n: n, keyCount: visibleKeys, headDim: headDim)
        }
    }

    /// out = P · V per head, with P [heads, n, keyCount] (e.g. from `attention`'s
    /// `probabilitiesOut`, possibly of another layer), v [keyCount, kvHeads, headDim] and
    /// out [n, heads, headDim]; head h reads kv head h / (heads / kvHeads). Used by Shared Attention.
    public static func applyProbabilities(_ p: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                          out: UnsafeMutablePointer<Float>, queryCount n: Int, keyCount: Int,
                                          heads: Int, kvHeads: Int, headDim: Int) {
        checkAttentionShape(n: n, keyCount: keyCount, heads: heads, kvHeads: kvHeads, headDim: headDim)
        guard n > 0 else { return }
        let group = heads / kvHeads
        for h in 0..<heads {
            multiplyProbabilities(p + h * n * keyCount, rowStride: keyCount,
                                  v: v + (h / group) * headDim, kvStride: kvHeads * headDim,
                                  out: out + h * headDim, outStride: heads * headDim,
                                  n: n, keyCount: keyCount, headDim: headDim)
        }
    }

    /// out[n, headDim] (row stride outStride) = P[n, keyCount] (row stride rowStride) · V[keyCount, headDim].
    private static func multiplyProbabilities(_ p: UnsafePointer<Float>, rowStride: Int,
                                              v: UnsafePointer<Float>, kvStride: Int,
                                              out: UnsafeMutablePointer<Float>, outStride: Int,
                                              n: Int, keyCount: Int, headDim: Int) {
        guard keyCount > 0 else {
            for i in 0..<n { (out + i * outStride).update(repeating: 0, count: headDim) }
            return
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(headDim), Int32(keyCount),
                    1, p, Int32(rowStride), v, Int32(kvStride), 0, out, Int32(outStride))
    }

    private static func checkAttentionShape(n: Int, keyCount: Int, heads: Int, kvHeads: Int, headDim: Int) {
        precondition(n >= 0 && keyCount >= 0 && headDim > 0, "bad attention sizes n=\(n) keys=\(keyCount) d=\(headDim)")
        precondition(heads > 0 && kvHeads > 0 && heads % kvHeads == 0,
                      "\(heads) heads is not a positive multiple of \(kvHeads) kv heads")
    }
}
