import CBLAS
import Foundation

/// Float32 reference kernels on row-major buffers. The CPU backend runs on them and the Vulkan
/// kernel tests compare against them, so they favour clarity; the heavy products go to OpenBLAS.
///
/// Buffers are never checked for length (they are raw pointers); sizes are preconditions.
public enum CPUKernels {
    /// y[n×out] = x[n×in] · Wᵀ, where `weight` is [out, in] row-major (GGUF/PyTorch layout).
    /// Uses `cblas_sgemv` for a single row (decode) and `cblas_sgemm` otherwise.
    public static func matmul(_ x: UnsafePointer<Float>, rows n: Int, inDim: Int,
                              weight w: UnsafePointer<Float>, outDim: Int,
                              into y: UnsafeMutablePointer<Float>) {
        precondition(n >= 0 && inDim >= 0 && outDim >= 0, "negative matmul size")
        guard n > 0, outDim > 0 else { return }
        guard inDim > 0 else { y.update(repeating: 0, count: n * outDim); return }
        if n == 1 {
            // y = W · x with W [out, in]
            cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(outDim), Int32(inDim),
                        1, w, Int32(inDim), x, 1, 0, y, 1)
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(outDim), Int32(inDim),
                        1, x, Int32(inDim), w, Int32(inDim), 0, y, Int32(outDim))
        }
    }

    /// out = a + b, element-wise (`out` may alias `a` or `b`).
    public static func add(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                           into out: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { out[i] = a[i] + b[i] }
    }

    /// out = silu(gate) · up with silu(g) = g / (1 + e^(−g)) (`out` may alias either input).
    public static func swiglu(gate: UnsafePointer<Float>, up: UnsafePointer<Float>,
                              into out: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count {
            let g = gate[i]
            // For g → −∞, exp overflows to +inf and g/inf gives −0: the correct limit.
            out[i] = g / (1 + expf(-g)) * up[i]
        }
    }

    /// out = gelu(gate) · up with GELU's tanh approximation,
    /// gelu(g) = g/2 · (1 + tanh(√(2/π) · (g + 0.044715 g³))) (`out` may alias either input).
    public static func geglu(gate: UnsafePointer<Float>, up: UnsafePointer<Float>,
                             into out: UnsafeMutablePointer<Float>, count: Int) {
        let c = Float((2 / Double.pi).squareRoot())
        for i in 0..<count {
            let g = gate[i]
            out[i] = 0.5 * g * (1 + tanhf(c * (g + 0.044715 * g * g * g))) * up[i]
        }
    }

    /// x *= factor, element-wise.
    public static func scale(_ x: UnsafeMutablePointer<Float>, by factor: Float, count: Int) {
        for i in 0..<count { x[i] *= factor }
    }
}
