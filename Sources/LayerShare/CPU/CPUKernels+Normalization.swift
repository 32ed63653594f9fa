import Foundation

extension CPUKernels {
    /// Per row: y = x / sqrt(mean(x²) + eps) · weight. `x`/`y` are [rows, dim], `weight` is [dim];
    /// `y` may alias `x`.
    ///
    /// The sum of squares is accumulated sequentially in float32, as a GPU kernel would
    /// (not in Double), so both paths carry the same kind of rounding.
    public static func rmsnorm(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                               into y: UnsafeMutablePointer<Float>, rows: Int, dim: Int, eps: Float) {
        precondition(dim > 0, "rmsnorm needs dim > 0")
        for r in 0..<rows {
            let xr = x + r * dim, yr = y + r * dim
            var sumSquares: Float = 0
            for i in 0..<dim { sumSquares += xr[i] * xr[i] }
            let scale = 1 / (sumSquares / Float(dim) + eps).squareRoot()
            for i in 0..<dim { yr[i] = xr[i] * scale * weight[i] }
        }
    }

    /// In-place softmax of each row of x [rows, cols], in float32. The row maximum is
    /// subtracted first so that exp never overflows; a row of all −inf becomes NaN.
    public static func softmax(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
        for r in 0..<rows { softmaxRow(x + r * cols, count: cols) }
    }

    /// log Σ exp(row[i]) with the maximum subtracted first (log-probabilities are row − this).
    static func logSumExp(_ row: UnsafePointer<Float>, count: Int) -> Float {
        var maxValue = -Float.infinity
        for i in 0..<count { maxValue = max(maxValue, row[i]) }
        var sum: Float = 0
        for i in 0..<count { sum += expf(row[i] - maxValue) }
        return maxValue + logf(sum)
    }

    /// Softmax of one contiguous row in place (shared with attention).
    @inline(__always)
    static func softmaxRow(_ row: UnsafeMutablePointer<Float>, count: Int) {
        guard count > 0 else { return }
        var maxValue = -Float.infinity
        for i in 0..<count { maxValue = max(maxValue, row[i]) }
        var sum: Float = 0
        for i in 0..<count {
            let e = expf(row[i] - maxValue)
            row[i] = e
            sum += e
        }
        let inverse = 1 / sum
        for i in 0..<count { row[i] *= inverse }
    }
}
