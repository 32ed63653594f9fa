import ModelFormats

/// The operations a transformer forward needs. The forward is written once against this protocol;
/// `CPUBackend` runs each op immediately on OpenBLAS, `VulkanBackend` records them into one command
/// batch that runs when a result is read (`read`) or `finish()` is called.
///
/// Tensors are float32, row-major; sizes are in elements.
public protocol InferenceBackend: AnyObject {
    associatedtype Tensor: AnyObject
    associatedtype Weight: AnyObject
    associatedtype Cache: AnyObject

    var name: String { get }
    /// Bytes the loaded weights take on this backend (as stored: quantized on Vulkan, float32 on the CPU).
    var weightBytes: Int { get }

    func makeTensor(_ count: Int, label: String) throws -> Tensor
    /// A tensor holding `values` (small constant tables, e.g. LiSA's alignment network).
    func makeTensor(_ values: [Float], label: String) throws -> Tensor
    /// Largest tensor the backend can allocate and bind, in bytes (the device's storage-buffer limit).
    var maxTensorBytes: Int { get }
    func loadWeight(_ weight: WeightTensor) throws -> Weight
    /// The rows of several weights (same type and row length) stacked into one matrix, so one product
    /// computes all of them (e.g. Q, K and V): fewer dispatches per token.
    func loadStacked(_ weights: [WeightTensor], label: String) throws -> Weight
    /// Matrices assembled from slices of tensors (head-wise sharing), loaded together: a backend
    /// may store a slice several of them use once (`ComposedWeight`).
    func loadComposed(_ weights: [ComposedWeight]) throws -> [Weight]
    /// One layer's cache: the streams of `spec`, `capacity` positions each.
    func makeCache(_ spec: CacheSpec, capacity: Int, label: String) throws -> Cache

    /// Profiling bucket for the ops that follow (e.g. "layer 3").
    func setGroup(_ group: String)

    func embed(_ table: Weight, tokens: [Int], into out: Tensor) throws
    /// (rows, columns) of a weight matrix.
    func shape(of weight: Weight) -> (rows: Int, cols: Int)
    /// y[rows, out] = x[rows, in] · Wᵀ
    func matmul(_ weight: Weight, _ x: Tensor, into y: Tensor, rows: Int, label: String) throws
    /// A product with the ops around it: W times x or rmsnorm(x) (`input`), results stored, added,
    /// gated or rotated into the KV cache (`output`). Backends fuse what they can into one kernel
    /// (fewer dispatches per token) and run the rest as separate ops (`unfusedProduct`).
    func product(_ weight: Weight, _ x: Tensor, rows: Int, input: FusedInput<Weight>, output: FusedOutput<Tensor, Weight, Cache>,
                 label: String) throws
    func rmsnorm(_ x: Tensor, weight: Weight, into y: Tensor, rows: Int, dim: Int, eps: Float) throws
    /// RoPE on a stacked projection [rows, q | k | v] (heads, kvHeads, kvHeads heads of `headDim`, rows contiguous):
    /// Q rotated in place, K rotated into the cache and V copied into it at `startPosition` + row. The K and
    /// V columns of `qkv` are unspecified afterwards. `divisors` (headDim/2 values, or nil) divide the
    /// pairs' frequencies (RoPE scaling).
    func ropeIntoCache(_ qkv: Tensor, rows: Int, heads: Int, kvHeads: Int, headDim: Int, startPosition: Int,
                       theta: Float, divisors: [Float]?, layout: RopeLayout, cache: Cache) throws
    /// Rotates adjacent pairs (2p, 2p+1) of `heads` vectors of `2·pairs` floats from column `offset` of
    /// each of `rows` rows (`rowSize` apart; row r at position startPosition + r) by position ·
    /// frequencies[(h / groupSize)·pairs + p] (LiSA's low-rank q_r and k_r).
    func rotatePairs(_ x: Tensor, rows: Int, rowSize: Int, offset: Int, heads: Int, pairs: Int, groupSize: Int,
                     frequencies: Tensor, startPosition: Int) throws
    /// Writes `rows` rows of `stream` (the stream's row size each, contiguous from element `offset` of
    /// `source`) into the cache at `startPosition`.
    func store(_ source: Tensor, offset: Int, into stream: CacheSpec.Stream, of cache: Cache, rows: Int, startPosition: Int) throws
    /// Copies column blocks of a row-major [rows, rowSize] tensor into separate tensors
    /// (part i receives columns offset..<offset+size of every row, densely).
    func splitColumns(_ x: Tensor, rows: Int, rowSize: Int, into parts: [(offset: Int, size: Int, tensor: Tensor)]) throws
    /// One attention call (see `AttentionOp`). A backend throws a clear error for a score source or
    /// emission it does not support.
    func attention(_ op: AttentionOp<Tensor, Cache>) throws
    /// out[0..<rowSize] = x[row·rowSize ..< (row+1)·rowSize]
    func copyRow(_ x: Tensor, row: Int, rowSize: Int, into out: Tensor) throws
    /// out[i] = silu(gate[gateOffset + i]) · up[upOffset + i]
    func swiglu(gate: Tensor, gateOffset: Int, up: Tensor, upOffset: Int, into out: Tensor, count: Int) throws
    /// out[i] = gelu_tanh(gate[gateOffset + i]) · up[upOffset + i] (GeGLU)
    func geglu(gate: Tensor, gateOffset: Int, up: Tensor, upOffset: Int, into out: Tensor, count: Int) throws
    /// RMS-normalises, in place, `heads` consecutive heads of `headDim` floats starting at column
    /// `offset` of each of `rows` rows (`rowSize` floats apart), each head times `weight` [headDim]
    /// (Gemma's QK-norm on a stacked [q | k | v] projection).
    func headNorm(_ x: Tensor, rows: Int, rowSize: Int, offset: Int, heads: Int, headDim: Int, weight: Weight, eps: Float) throws
    /// x[0..<count] *= factor (Gemma's embedding scale).
    func scale(_ x: Tensor, by factor: Float, count: Int) throws
    /// out = a + b; `out` may be `a`.
    func add(_ a: Tensor, _ b: Tensor, into out: Tensor, count: Int) throws
    /// x[r, j] += bias[j] for `rows` rows of `bias`'s length, in place (Qwen2's Q|K|V biases).
    func addBias(_ x: Tensor, bias: Weight, rows: Int) throws

    /// Runs pending work and returns `count` floats of `tensor` from `offset`.
    func read(_ tensor: Tensor, offset: Int, count: Int) throws -> [Float]
    /// Runs pending work and waits for it.
    func finish() throws
}
