import CVulkan
import Foundation
import ModelFormats
import VulkanCompute

/// The transformer's GPU kernels. Every method validates its arguments, then RECORDS one dispatch
/// into the caller's `CommandBatch` (nothing is submitted here); `label`/`group` are passed on to
/// `batch.dispatch` for per-dispatch profiles.
///
/// Offsets, strides and counts are in float32 elements unless named otherwise. Pipelines are made
/// on first use, one per variant (shader file + defines + specialization), and kept by the library.
public final class VulkanKernels {
    public let library: PipelineLibrary
    public var device: VulkanDevice { library.device }
    public let tuning: Tuning
    /// Subgroup arithmetic (subgroupAdd/Max) usable in compute shaders on this device.
    public let subgroupArithmetic: Bool

    private let lock = NSLock()
    private var ropeTables: [String: DeviceBuffer] = [:]

    /// Launch shapes. Defaults come from the device's limits; benchmarks may override them.
    public struct Tuning: Sendable, CustomStringConvertible {
        /// matvec (decode): invocations per workgroup (power of two), output rows per workgroup,
        /// invocations sharing one 32-element block (1, 2 or 4).
        public var matvecWorkgroup: Int
        public var matvecRows: Int
        public var matvecParts: Int
        /// Prefill (rows > 1) kernel: register-blocked matvec.comp with `prefillWeightRows` ×
        /// `prefillActivationRows` outputs per workgroup (CPU drivers: loads are what costs), or the
        /// shared-memory tiled matmul.comp (GPUs).
        public var prefillRegisterBlocked: Bool
        /// matvec.comp reads quantized weights through their 16-byte texel view (VulkanMatrix.texelView)
        /// instead of as a storage buffer, where the matrix has one.
        public var matvecTexelWeights: Bool
        /// With texel weights, matvec.comp / matmul_lanes.comp also read x through the activation buffer's cached
        /// RGBA32F view (DeviceBuffer.floatTexelView) where offsets and strides are 4-float aligned.
        public var texelActivations: Bool = true
        /// Quantized prefill in the register-blocked mode uses matmul_lanes.comp (each invocation
        /// walks all of K for prefillWeightRows rows × prefillActivationRows rows; no reduction)
        /// instead of matvec.comp's split-K form.
        public var prefillLanes: Bool = true
        public var prefillWeightRows: Int
        public var prefillActivationRows: Int
        /// Decode (rows == 1) products of quantized weights through matmul_lanes.comp with this many
        /// weight rows per invocation instead of matvec.comp; 0 = off. Only matmul_lanes.comp has the
        /// fused forms (`product(norm:output:)`), which save dispatches: on lavapipe each costs ~50 µs.
        /// (Q8_0 ran slower in lanes than in matvec.comp while weights were row-major; with tiled
        /// weights the Q8_0 LM head is faster in lanes: decode 25.5–26.9 → 28.6–29.9 tok/s.)
        public var decodeLanesRows: Int = 0
        /// Rows per tile of the quantized weights' stored block order (VulkanMatrix.tileRows):
        /// 1 = row-major (GPUs: neighbouring invocations read neighbouring blocks of a row); on CPU
        /// drivers half a lanes workgroup's rows, so each workgroup streams through memory in order.
        public var weightTileRows: Int = 1
        /// matmul.comp tile: BM weight rows × BN activation rows per workgroup, TM × TN per
        /// invocation; the workgroup has (BM/TM)·(BN/TN) invocations.
        public var gemmBM: Int
        public var gemmBN: Int
        public var gemmTM: Int
        public var gemmTN: Int
        /// Row reductions (rmsnorm, softmax) and element-wise ops: invocations per workgroup (powers of two).
        public var reduceWorkgroup: Int
        public var elementwiseWorkgroup: Int

        public init(matvecWorkgroup: Int, matvecRows: Int, matvecParts: Int,
                    prefillRegisterBlocked: Bool, prefillWeightRows: Int, prefillActivationRows: Int,
                    gemmBM: Int, gemmBN: Int, gemmTM: Int, gemmTN: Int,
                    reduceWorkgroup: Int, elementwiseWorkgroup: Int, matvecTexelWeights: Bool = false) {
            self.matvecWorkgroup = matvecWorkgroup
            self.matvecTexelWeights = matvecTexelWeights
            self.matvecRows = matvecRows
            self.matvecParts = matvecParts
            self.prefillRegisterBlocked = prefillRegisterBlocked
            self.prefillWeightRows = prefillWeightRows
            self.prefillActivationRows = prefillActivationRows
            self.gemmBM = gemmBM
            self.gemmBN = gemmBN
            self.gemmTM = gemmTM
            self.gemmTN = gemmTN
            self.reduceWorkgroup = reduceWorkgroup
            self.elementwiseWorkgroup = elementwiseWorkgroup
        }

        public static func defaults(for info: DeviceInfo) -> Tuning {
            let maxInvocations = max(1, info.maxWorkgroupInvocations)
            func pow2(_ n: Int) -> Int { var p = 1; while p * 2 <= n { p *= 2 }; return p }
            let subgroup = max(1, info.subgroupSize)
            var t: Tuning
            if info.kind == .cpu {
                // CPU drivers (lavapipe) run a subgroup as one SIMD loop on one core, and Mesa 22's
                // lavapipe turns every storage-buffer load into a per-invocation scalar loop, so
                // loads dominate: one subgroup per workgroup (no shared-memory reduction), whole
                // blocks per invocation (one header load per block) and many rows per workgroup
                // so each x load serves 32 rows. Measured on lavapipe: 8 rows/workgroup reached
                // ~60 % of the speed of 32.
                // Texel fetches, in contrast, are gathered with vector code: a plain stream reads
                // ~11× faster through 16-byte texels than through storage-buffer loads, so the
                // weights go through texel views. (On GPUs storage-buffer loads are fast already.)
                // With texel weights 64 rows/workgroup measured ~15 % faster than 32, 128 no better.
                // Quantized prefill: matmul_lanes.comp with x through texel views too, 8 weight
                // rows × 8 activation rows per invocation: Q4_1 576→3072 × 128 rows went from
                // 1.3 GFLOP/s (split-K matvec, x as storage buffer) to ~30 (4x8: ~23, 4x16: ~27).
                t = Tuning(matvecWorkgroup: pow2(subgroup), matvecRows: 64, matvecParts: 1,
                           prefillRegisterBlocked: true, prefillWeightRows: 8, prefillActivationRows: 8,
                           gemmBM: 64, gemmBN: 32, gemmTM: 4, gemmTN: 4,
                           reduceWorkgroup: pow2(subgroup * 8), elementwiseWorkgroup: pow2(subgroup * 8),
                           matvecTexelWeights: true)
                // Single-threaded (LP_NUM_THREADS=0, no hand-off noise) a Q4_1 decode step's products
                // took 1.03 ms per layer in lanes with 4 rows per invocation against 1.28 ms in
                // matvec.comp (2, 6 and 8 rows: within 5% of 4).
                t.decodeLanesRows = 4
                // Weight rows in tiles, so the hardware prefetcher follows a few sequential streams
                // per workgroup instead of 32 row streams. A decode workgroup's rows are two whole
                // tiles of 16 for every output form (plain: 32 consecutive rows; SwiGLU: 16 gate and
                // 16 up rows; RoPE pairs: 32 consecutive rows). Decode of the default model, two
                // threads: 21–22 tok/s row-major; tiles of 8: 27, of 16: 28–30, of 32: 21–26.
                t.weightTileRows = max(1, t.decodeLanesRows / 2) * pow2(subgroup)
            } else {
                // GPUs: enough invocations per row that short rows (576 = 18 blocks) still fill
                // a few subgroups; a quarter block per invocation.
                t = Tuning(matvecWorkgroup: max(64, pow2(subgroup)), matvecRows: 2, matvecParts: 4,
                           prefillRegisterBlocked: false, prefillWeightRows: 2, prefillActivationRows: 4,
                           gemmBM: 64, gemmBN: 64, gemmTM: 4, gemmTN: 4,
                           reduceWorkgroup: 256, elementwiseWorkgroup: 256)
            }
            // LAYERSHARE_PREFILL_TILE=WxA (weight rows × activation rows per workgroup) and
            // LAYERSHARE_TEXEL_X=0 override the register-blocked prefill (for A/B measurements).
            let env = ProcessInfo.processInfo.environment
            if let tile = env["LAYERSHARE_PREFILL_TILE"]?.split(separator: "x").compactMap({ Int($0) }), tile.count == 2, tile.allSatisfy({ $0 > 0 }) {
                t.prefillWeightRows = tile[0]; t.prefillActivationRows = tile[1]
            }
            if env["LAYERSHARE_TEXEL_X"] == "0" { t.texelActivations = false }
            if env["LAYERSHARE_PREFILL_LANES"] == "0" { t.prefillLanes = false }
            if let n = env["LAYERSHARE_DECODE_LANES"].flatMap({ Int($0) }), n >= 0 { t.decodeLanesRows = n }
            if let n = env["LAYERSHARE_WEIGHT_TILE"].flatMap({ Int($0) }), n > 0, n & (n - 1) == 0 { t.weightTileRows = n }
            // LAYERSHARE_TEXEL_WEIGHTS=0/1 overrides the choice (for A/B measurements).
            switch ProcessInfo.processInfo.environment["LAYERSHARE_TEXEL_WEIGHTS"] {
            case "0": t.matvecTexelWeights = false
            case "1": t.matvecTexelWeights = true
            default: break
            }
            let cap = pow2(min(maxInvocations, 1024))
            t.matvecWorkgroup = min(t.matvecWorkgroup, cap)
            t.reduceWorkgroup = min(t.reduceWorkgroup, cap)
            t.elementwiseWorkgroup = min(t.elementwiseWorkgroup, cap)
            // Shrink the GEMM tile until it fits the shared memory and invocation limits.
            while (t.gemmBM / t.gemmTM) * (t.gemmBN / t.gemmTN) > maxInvocations
                    || 32 * (t.gemmBM + t.gemmBN) * 4 > info.maxSharedMemory {
                if t.gemmBN > t.gemmTN { t.gemmBN /= 2 } else if t.gemmBM > t.gemmTM { t.gemmBM /= 2 } else { break }
            }
            return t
        }

        public var description: String {
            "matvec wg \(matvecWorkgroup) rows \(matvecRows) parts \(matvecParts)\(matvecTexelWeights ? " texel" : "")"
                + (decodeLanesRows > 0 ? " (decode in lanes, \(decodeLanesRows) rows)" : "")
                + (weightTileRows > 1 ? "; weights in tiles of \(weightTileRows) rows" : "") + "; prefill "
                + (prefillRegisterBlocked ? "register-blocked\(prefillLanes ? " lanes" : "") \(prefillWeightRows)x\(prefillActivationRows)\(texelActivations ? " texel-x" : "")" : "tiled") + "; gemm \(gemmBM)x\(gemmBN) tile \(gemmTM)x\(gemmTN); "
                + "reduce wg \(reduceWorkgroup); elementwise wg \(elementwiseWorkgroup)"
        }
    }

    /// `useSubgroupArithmetic: false` forces the shared-memory reduction paths even where
    /// subgroup arithmetic exists (tests use it to cover the fallback).
    public init(library: PipelineLibrary, tuning: Tuning? = nil, useSubgroupArithmetic: Bool = true) throws {
        self.library = library
        let info = library.device.info
        let t = tuning ?? Tuning.defaults(for: info)
        func isPow2(_ n: Int) -> Bool { n > 0 && n & (n - 1) == 0 }
        guard isPow2(t.matvecWorkgroup), isPow2(t.reduceWorkgroup), isPow2(t.elementwiseWorkgroup),
              [1, 2, 4].contains(t.matvecParts), t.matvecRows >= 1, t.prefillWeightRows >= 1, t.prefillActivationRows >= 1,
              t.decodeLanesRows >= 0,
              t.gemmBM % t.gemmTM == 0, t.gemmBN % t.gemmTN == 0 else {
            throw VulkanError.invalidArgument("VulkanKernels: invalid tuning \(t)")
        }
        let gemmInvocations = (t.gemmBM / t.gemmTM) * (t.gemmBN / t.gemmTN)
        let limits = [t.matvecWorkgroup, t.reduceWorkgroup, t.elementwiseWorkgroup, gemmInvocations]
        guard limits.allSatisfy({ $0 <= info.maxWorkgroupInvocations }) else {
            throw VulkanError.invalidArgument("VulkanKernels: tuning \(t) exceeds maxComputeWorkGroupInvocations \(info.maxWorkgroupInvocations)")
        }
        let shared = [t.matvecRows * t.matvecWorkgroup * 4, t.prefillWeightRows * t.prefillActivationRows * t.matvecWorkgroup * 4, 32 * (t.gemmBM + t.gemmBN) * 4, t.reduceWorkgroup * 4]
        guard shared.allSatisfy({ $0 <= info.maxSharedMemory }) else {
            throw VulkanError.invalidArgument("VulkanKernels: tuning \(t) needs more than the \(info.maxSharedMemory) bytes of shared memory")
        }
        self.tuning = t
        subgroupArithmetic = useSubgroupArithmetic && library.device.info.supportsSubgroupArithmetic
    }

    // MARK: - Pipelines

    private func pipeline(_ file: String, defines: [String: String] = [:], specialization: [ShaderScalar],
                          bindings: Int, pushWords: Int) throws -> ComputePipeline {
        try pipeline(file, defines: defines, specialization: specialization,
                     bindings: Array(repeating: .storageBuffer, count: bindings), pushWords: pushWords)
    }

    private func pipeline(_ file: String, defines: [String: String] = [:], specialization: [ShaderScalar],
                          bindings: [DescriptorKind], pushWords: Int, subgroups: SubgroupRequirement = .any) throws -> ComputePipeline {
        // PipelineLibrary makes each variant once and keeps it.
        var defs = defines
        if subgroupArithmetic { defs["USE_SUBGROUP_ARITH"] = "1" }
        return try library.pipeline(file, defines: defs, specialization: specialization, bindingKinds: bindings,
                                    pushConstantBytes: pushWords * 4, subgroups: subgroups)
    }

    /// The defines that tell quant.glsl how a matrix is stored: its type and, for tiled block
    /// orders, WEIGHT_TILE.
    static func weightDefines(_ weight: VulkanMatrix) throws -> [String: String] {
        var defines = [try typeDefine(weight.type): "1"]
        if weight.tileRows > 1 { defines["WEIGHT_TILE"] = "\(weight.tileRows)u" }
        return defines
    }

    static func typeDefine(_ type: GGMLType) throws -> String {
        switch type {
        case .f32: return "TYPE_F32"
        case .f16: return "TYPE_F16"
        case .q8_0: return "TYPE_Q8_0"
        case .q4_0: return "TYPE_Q4_0"
        case .q4_1: return "TYPE_Q4_1"
        case .bf16: throw VulkanError.invalidArgument("BF16 weights have no GPU kernel; VulkanMatrix widens them to F32 on upload")
        }
    }

    // MARK: - Argument checks

    // `what` names the call in error messages; built only when there is one (these run per dispatch).
    private func fail(_ what: @autoclosure () -> String, _ message: String) -> VulkanError {
        VulkanError.invalidArgument("\(what()): \(message)")
    }

    /// Checks that `buffer` holds floats [offset, offset + span) and that the indices fit 32 bits.
    private func requireFloats(_ what: @autoclosure () -> String, _ name: String, _ buffer: DeviceBuffer, offset: Int, span: Int) throws {
        guard offset >= 0 else { throw fail(what(), "\(name) offset \(offset) is negative") }
        let end = offset + span
        guard end * 4 <= buffer.byteCount else {
            throw fail(what(), "\(name) needs floats \(offset)..<\(end) (\(end * 4) bytes) but buffer '\(buffer.label)' has \(buffer.byteCount) bytes")
        }
        guard end <= Int(UInt32.max) else { throw fail(what(), "\(name) range exceeds 32-bit indexing") }
    }

    private func requirePositive(_ what: @autoclosure () -> String, _ pairs: KeyValuePairs<String, Int>) throws {
        for (name, value) in pairs where value <= 0 || value > Int(UInt32.max) {
            throw fail(what(), "\(name) must be in 1...\(UInt32.max), got \(value)")
        }
    }

    /// Workgroup grid for `n` workgroups, folded into y when n exceeds maxComputeWorkGroupCount.x
    /// (shaders recompute the flat index as y·numX + x and skip the excess).
    private func folded(_ n: Int, _ what: @autoclosure () -> String) throws -> (Int, Int, Int) {
        let (maxX, maxY, _) = device.info.maxWorkgroupCount
        if n <= maxX { return (n, 1, 1) }
        let y = (n + maxX - 1) / maxX
        guard y <= maxY else { throw fail(what(), "\(n) workgroups exceed the device's grid limits") }
        return (maxX, y, 1)
    }

    private static func u(_ v: Int) -> ShaderScalar { .uint(UInt32(v)) }

    // MARK: - Matrix products

    /// The RMSNorm a product applies to x first (matmul_lanes.comp only).
    public enum ProductNorm {
        /// rmsnorm(x)·weight, computed in the kernel (NORM_X).
        case inKernel(weight: DeviceBuffer, eps: Float)
        /// x is already x·weight, written by the previous product's `NextNorm`, and Σx² comes as
        /// `count` partial sums in `partials` (NORM_PRE): one activation row.
        case prepared(partials: DeviceBuffer, count: Int, eps: Float)

        var eps: Float {
            switch self {
            case let .inKernel(_, eps), let .prepared(_, _, eps): return eps
            }
        }
    }

    /// What an accumulating product prepares for the norm that reads its result next: y·weight into
    /// `normed` and `nextNormPartials(weight:rows:)` partial sums of y² into `partials`.
    public struct NextNorm {
        public var weight: DeviceBuffer, normed: DeviceBuffer, partials: DeviceBuffer
        public init(weight: DeviceBuffer, normed: DeviceBuffer, partials: DeviceBuffer) {
            self.weight = weight; self.normed = normed; self.partials = partials
        }
    }

    /// Where a product's results go, beyond a plain store: work matmul_lanes.comp does in the same
    /// dispatch (see the shader's header).
    public enum ProductOutput {
        /// y = W·x
        case store
        /// y += W·x (the residual add), optionally preparing the next norm's input (one row).
        case accumulate(NextNorm? = nil)
        /// W = [gate; up] (2F rows): y = silu(gate·x) ⊙ (up·x), F columns per row.
        case swiglu
        /// W = [q; k; v]: Q rotated into y (heads·headDim columns per row), K rotated into the K cache
        /// and V copied into the V cache at row startPosition + r.
        case ropeIntoCache(RopeCacheTarget)

        var isPaired: Bool {
            switch self {
            case .store, .accumulate: return false
            case .swiglu, .ropeIntoCache: return true
            }
        }
    }

    public struct RopeCacheTarget {
        public var heads: Int, kvHeads: Int, headDim: Int
        public var startPosition: Int
        public var theta: Float
        public var layout: ModelFormats.RopeLayout
        public var keyCache: DeviceBuffer, valueCache: DeviceBuffer
        public init(heads: Int, kvHeads: Int, headDim: Int, startPosition: Int, theta: Float, layout: ModelFormats.RopeLayout,
                    keyCache: DeviceBuffer, valueCache: DeviceBuffer) {
            self.heads = heads; self.kvHeads = kvHeads; self.headDim = headDim; self.startPosition = startPosition
            self.theta = theta; self.layout = layout; self.keyCache = keyCache; self.valueCache = valueCache
        }
    }

    /// Weight rows per invocation when `rows` activation rows of a `type` weight go through
    /// matmul_lanes.comp; nil when another kernel does the product.
    private func lanesRows(_ type: GGMLType, rows: Int) -> Int? {
        guard type.isQuantized else { return nil }
        if rows == 1 { return tuning.decodeLanesRows > 0 ? tuning.decodeLanesRows : nil }
        return tuning.prefillRegisterBlocked && tuning.prefillLanes ? tuning.prefillWeightRows : nil
    }

    /// Whether `product` can fuse `norm` / `output` for this weight and row count. Where it cannot,
    /// callers run the separate kernels (rmsnorm, add, swiglu, ropeIntoCache).
    public func canFuse(weight: VulkanMatrix, rows: Int, output: ProductOutput) -> Bool {
        guard let perInvocation = lanesRows(weight.type, rows: rows) else { return false }
        return !output.isPaired || perInvocation % 2 == 0
    }

    /// Partial sums an accumulating product of `weight` over one row writes for `NextNorm`, or nil
    /// where it cannot prepare the next norm. Buffers for them need `(count + 3) / 4 * 4` floats
    /// (the reader fetches whole 4-float texels).
    public func nextNormPartials(weight: VulkanMatrix) -> Int? {
        let wg = tuning.matvecWorkgroup
        guard let perInvocation = lanesRows(weight.type, rows: 1) else { return nil }
        let rowsPerGroup = perInvocation * wg
        let perGroup = partialsPerSubgroup(workgroup: wg) != nil ? wg / device.info.subgroupSize : wg
        return (weight.rows + rowsPerGroup - 1) / rowsPerGroup * perGroup
    }

    /// The requirement under which matmul_lanes.comp may write one partial sum per subgroup (full
    /// subgroups of the device's size, so the host counts them right); nil: one per invocation.
    private func partialsPerSubgroup(workgroup: Int) -> SubgroupRequirement? {
        let info = device.info
        guard subgroupArithmetic, info.subgroupSize >= 1, workgroup % info.subgroupSize == 0 else { return nil }
        let requirement = SubgroupRequirement.fullDeviceSubgroups(info)
        // Without a required size, full subgroups need the local size to be a multiple of the largest size.
        if requirement.requiredSize == nil, workgroup % max(1, info.maxSubgroupSize) != 0 { return nil }
        return requirement
    }

    /// y[r, o] = Σ_i x[r, i] · W[o, i] for r < rows: x row r at `xOffset + r·xStride` (cols floats),
    /// y row r at `yOffset + r·yStride` (weight.rows floats). Strides default to packed rows.
    /// rows == 1 uses the decode kernel, rows > 1 the prefill kernel chosen by `tuning`.
    public func matmul(_ batch: CommandBatch, weight: VulkanMatrix, x: DeviceBuffer, xOffset: Int = 0,
                       y: DeviceBuffer, yOffset: Int = 0, rows: Int, xStride: Int? = nil, yStride: Int? = nil,
                       label: String, group: String = "") throws {
        try product(batch, weight: weight, x: x, xOffset: xOffset, y: y, yOffset: yOffset, rows: rows,
                    xStride: xStride, yStride: yStride, label: label, group: group)
    }

    /// `matmul` with the work around it fused: with `norm`, W multiplies rmsnorm(x)·weight (rows of
    /// cols floats) instead of x; `output` says what happens to the results. Anything but a plain
    /// product needs `canFuse(weight:rows:output:)`. yStride defaults to the output's row length.
    public func product(_ batch: CommandBatch, weight: VulkanMatrix, x: DeviceBuffer, xOffset: Int = 0,
                        y: DeviceBuffer, yOffset: Int = 0, rows: Int, xStride: Int? = nil, yStride: Int? = nil,
                        norm: ProductNorm? = nil, output: ProductOutput = .store,
                        label: String, group: String = "") throws {
        func what() -> String { "matmul '\(label)' (\(weight.label) \(weight.type) [\(weight.rows)×\(weight.cols)])" }
        let cols = weight.cols, outRows = weight.rows
        try requirePositive(what(), ["rows": rows])
        guard weight.buffer.device === device, x.device === device, y.device === device else {
            throw fail(what(), "buffers belong to a different device than the kernels")
        }
        // Columns of y per row: all weight rows, or what the fused output keeps.
        let yCols: Int
        switch output {
        case .store, .accumulate: yCols = outRows
        case .swiglu:
            guard outRows % 2 == 0 else { throw fail(what(), "swiglu needs [gate; up] stacked rows, an even count, got \(outRows)") }
            yCols = outRows / 2
        case let .ropeIntoCache(r):
            try requirePositive(what(), ["heads": r.heads, "kvHeads": r.kvHeads, "headDim": r.headDim])
            guard r.headDim % 2 == 0 else { throw fail(what(), "headDim must be even, got \(r.headDim)") }
            guard outRows == (r.heads + 2 * r.kvHeads) * r.headDim else {
                throw fail(what(), "\(outRows) rows are not q|k|v for \(r.heads) + 2·\(r.kvHeads) heads of \(r.headDim)")
            }
            guard r.startPosition >= 0, r.startPosition + rows <= Int(UInt32.max) else {
                throw fail(what(), "positions \(r.startPosition)..<\(r.startPosition + rows) out of range")
            }
            guard r.theta > 0, r.theta.isFinite else { throw fail(what(), "theta must be positive, got \(r.theta)") }
            guard r.keyCache !== r.valueCache, r.keyCache !== x, r.valueCache !== x, r.keyCache !== y, r.valueCache !== y else {
                throw fail(what(), "x, y, the K cache and the V cache must be distinct buffers")
            }
            let kvRow = r.kvHeads * r.headDim
            try requireFloats(what(), "K cache", r.keyCache, offset: r.startPosition * kvRow, span: rows * kvRow)
            try requireFloats(what(), "V cache", r.valueCache, offset: r.startPosition * kvRow, span: rows * kvRow)
            yCols = r.heads * r.headDim
        }
        let xs = xStride ?? cols, ys = yStride ?? yCols
        guard xs >= cols else { throw fail(what(), "x row stride \(xs) is shorter than the \(cols) weight columns") }
        guard ys >= yCols else { throw fail(what(), "y row stride \(ys) is shorter than the \(yCols) output columns") }
        if weight.type.isQuantized, cols % 32 != 0 {
            throw fail(what(), "\(weight.type) needs a multiple of 32 columns, got \(cols)")
        }
        let xSpan = (rows - 1) * xs + cols, ySpan = (rows - 1) * ys + yCols
        try requireFloats(what(), "x", x, offset: xOffset, span: xSpan)
        try requireFloats(what(), "y", y, offset: yOffset, span: ySpan)
        if x === y, xOffset < yOffset + ySpan, yOffset < xOffset + xSpan {
            throw fail(what(), "x and y overlap in buffer '\(x.label)'")
        }
        if let norm {
            guard norm.eps >= 0, norm.eps.isFinite else { throw fail(what(), "eps must be finite and non-negative, got \(norm.eps)") }
            switch norm {
            case let .inKernel(weight, _): try requireFloats(what(), "norm weight", weight, offset: 0, span: cols)
            case let .prepared(partials, count, _):
                guard rows == 1, count > 0 else {
                    throw fail(what(), "a prepared norm needs one row and at least one partial sum, got \(rows) rows, \(count)")
                }
                try requireFloats(what(), "norm partial sums (whole texels)", partials, offset: 0, span: (count + 3) / 4 * 4)
                guard partials !== y else { throw fail(what(), "the partial sums must not be y") }
            }
        }
        if case let .accumulate(next?) = output {
            guard rows == 1, let count = nextNormPartials(weight: weight) else {
                throw fail(what(), "preparing the next norm needs one row through matmul_lanes.comp (nextNormPartials)")
            }
            try requireFloats(what(), "next norm weight", next.weight, offset: 0, span: outRows)
            try requireFloats(what(), "normed output", next.normed, offset: 0, span: outRows)
            try requireFloats(what(), "norm partial sums (whole texels)", next.partials, offset: 0, span: (count + 3) / 4 * 4)
            let buffers = [next.normed, next.partials, y, x]  // pairwise distinct (no Set: this runs per dispatch)
            guard !(0..<4).contains(where: { i in (i + 1..<4).contains { buffers[i] === buffers[$0] } }) else {
                throw fail(what(), "x, y, the normed output and the partial sums must be distinct buffers")
            }
        }
        let weightDefines = try Self.weightDefines(weight)
        let t = tuning
        if let perInvocation = lanesRows(weight.type, rows: rows) {
            guard !output.isPaired || perInvocation % 2 == 0 else {
                throw fail(what(), "this output needs an even number of weight rows per invocation, tuning has \(perInvocation)")
            }
            try lanesProduct(batch, weight: weight, weightDefines: weightDefines, rowsPerInvocation: perInvocation, x: x, xOffset: xOffset,
                             xs: xs, xSpan: xSpan, y: y, yOffset: yOffset, ys: ys, rows: rows, norm: norm, output: output,
                             what: what, label: label, group: group)
            return
        }
        guard norm == nil, case .store = output else {
            throw fail(what(), "fused norm/output needs matmul_lanes.comp, which this weight type and row count do not use (check canFuse)")
        }
        if rows == 1 || t.prefillRegisterBlocked {
            let (wRows, xRows) = rows == 1 ? (t.matvecRows, 1) : (t.prefillWeightRows, t.prefillActivationRows)
            let (view, xView) = texelViews(weight: weight, x: x, xOffset: xOffset, xs: xs, xSpan: xSpan)
            var defines = weightDefines
            defines["PARTS"] = "\(t.matvecParts)u"
            if view != nil { defines["WEIGHTS_TEXEL"] = "1" }
            if xView != nil { defines["X_TEXEL"] = "1" }
            let p = try pipeline("matvec.comp", defines: defines,
                                 specialization: [Self.u(t.matvecWorkgroup), Self.u(wRows), Self.u(xRows)],
                                 bindings: [view != nil ? .uniformTexelBuffer : .storageBuffer, xView != nil ? .uniformTexelBuffer : .storageBuffer, .storageBuffer],
                                 pushWords: 7)
            var groups = try folded((outRows + wRows - 1) / wRows, what())
            groups.2 = (rows + xRows - 1) / xRows
            guard groups.2 <= device.info.maxWorkgroupCount.2 else { throw fail(what(), "\(rows) rows exceed the device's grid limits") }
            try batch.dispatch(p, [view.map { .texels($0) } ?? .read(weight.buffer), xView.map { .texels($0) } ?? .read(x), .write(y)],
                               push: [Self.u(cols), Self.u(outRows), Self.u(xOffset), Self.u(yOffset), Self.u(rows), Self.u(xs), Self.u(ys)],
                               groups: groups, label: label, group: group)
        } else {
            let invocations = (t.gemmBM / t.gemmTM) * (t.gemmBN / t.gemmTN)
            let p = try pipeline("matmul.comp", defines: weightDefines,
                                 specialization: [Self.u(invocations), Self.u(t.gemmBM), Self.u(t.gemmBN), Self.u(t.gemmTM), Self.u(t.gemmTN)],
                                 bindings: 3, pushWords: 7)
            let gx = (outRows + t.gemmBM - 1) / t.gemmBM, gy = (rows + t.gemmBN - 1) / t.gemmBN
            guard gx <= device.info.maxWorkgroupCount.0, gy <= device.info.maxWorkgroupCount.1 else {
                throw fail(what(), "\(gx)×\(gy) workgroups exceed the device's grid limits")
            }
            try batch.dispatch(p, [.read(weight.buffer), .read(x), .write(y)],
                               push: [Self.u(cols), Self.u(outRows), Self.u(rows), Self.u(xOffset), Self.u(xs), Self.u(yOffset), Self.u(ys)],
                               groups: (gx, gy, 1), label: label, group: group)
        }
    }

    /// The weight's 16-byte texel view (with `matvecTexelWeights`) and x's RGBA32F view when every
    /// 4-float group the kernels read is one whole texel inside it (with texel weights and
    /// `texelActivations`); nil where the storage buffer is read instead.
    private func texelViews(weight: VulkanMatrix, x: DeviceBuffer, xOffset: Int, xs: Int, xSpan: Int) -> (TexelBufferView?, TexelBufferView?) {
        let view = tuning.matvecTexelWeights ? weight.texelView : nil
        guard view != nil, tuning.texelActivations, xOffset % 4 == 0, xs % 4 == 0,
              let xView = x.floatTexelView, xOffset + xSpan <= xView.texelCount * 4 else { return (view, nil) }
        return (view, xView)
    }

    /// matmul_lanes.comp with its fusions (arguments validated by `product`).
    private func lanesProduct(_ batch: CommandBatch, weight: VulkanMatrix, weightDefines: [String: String], rowsPerInvocation: Int,
                              x: DeviceBuffer, xOffset: Int, xs: Int, xSpan: Int, y: DeviceBuffer, yOffset: Int, ys: Int,
                              rows: Int, norm: ProductNorm?, output: ProductOutput,
                              what: () -> String, label: String, group: String) throws {
        let t = tuning
        var (view, xView) = texelViews(weight: weight, x: x, xOffset: xOffset, xs: xs, xSpan: xSpan)
        // The norm weight or partial sums are read like x: through their own RGBA32F views, or all
        // as storage buffers.
        var normSource: DeviceBuffer?, normSpan = 0
        switch norm {
        case let .inKernel(normWeight, _)?: (normSource, normSpan) = (normWeight, weight.cols)
        case let .prepared(partials, count, _)?: (normSource, normSpan) = (partials, count)
        case nil: break
        }
        let normView = normSource.flatMap { xView == nil ? nil : $0.floatTexelView }
        if normSource != nil, xView != nil, (normView?.texelCount ?? 0) * 4 < normSpan { xView = nil }
        var defines = weightDefines
        if view != nil { defines["WEIGHTS_TEXEL"] = "1" }
        if xView != nil { defines["X_TEXEL"] = "1" }
        var kinds: [DescriptorKind] = [view != nil ? .uniformTexelBuffer : .storageBuffer, xView != nil ? .uniformTexelBuffer : .storageBuffer, .storageBuffer]
        var bindings: [BufferBinding] = [view.map { .texels($0) } ?? .read(weight.buffer), xView.map { .texels($0) } ?? .read(x)]
        var push: [ShaderScalar] = [Self.u(weight.cols), Self.u(weight.rows), Self.u(xOffset), Self.u(yOffset), Self.u(rows), Self.u(xs), Self.u(ys)]
        let wg = tuning.matvecWorkgroup
        let xRows = rows == 1 ? 1 : t.prefillActivationRows
        var specialization = [Self.u(wg), Self.u(rowsPerInvocation), Self.u(xRows)]
        switch output {
        case .store: bindings.append(.write(y))
        case .accumulate: defines["OUT_ADD"] = "1"; bindings.append(.readWrite(y))
        case .swiglu: defines["OUT_GLU"] = "1"; bindings.append(.write(y))
        case .ropeIntoCache: defines["OUT_ROPE_KV"] = "1"; bindings.append(.write(y))
        }
        // Optional bindings after y, numbered in order (the shader takes the numbers as defines).
        func bind(_ name: String, _ kind: DescriptorKind, _ binding: BufferBinding) {
            defines[name] = "\(bindings.count)"
            kinds.append(kind)
            bindings.append(binding)
        }
        if let norm, let normSource {
            let texel = xView != nil
            switch norm {
            case .inKernel:
                defines["NORM_X"] = "1"
                bind("NORM_BINDING", texel ? .uniformTexelBuffer : .storageBuffer, texel ? .texels(normView!) : .read(normSource))
                push.append(.float(norm.eps))
            case let .prepared(_, count, eps):
                defines["NORM_PRE"] = "1"
                bind("PARTIALS_BINDING", texel ? .uniformTexelBuffer : .storageBuffer, texel ? .texels(normView!) : .read(normSource))
                push += [.float(eps), Self.u(count)]
            }
        }
        var subgroups = SubgroupRequirement.any
        if case let .accumulate(next?) = output {
            defines["NEXT_NORM"] = "1"
            if let requirement = partialsPerSubgroup(workgroup: wg) {
                defines["PARTIALS_PER_SUBGROUP"] = "1"
                subgroups = requirement
            }
            bind("NEXT_NORM_BINDING", .storageBuffer, .read(next.weight))
            bind("XN_BINDING", .storageBuffer, .write(next.normed))
            bind("PARTIALS_OUT_BINDING", .storageBuffer, .write(next.partials))
        }
        if case let .ropeIntoCache(r) = output {
            bind("ROPE_TABLE_BINDING", .storageBuffer, .read(try ropeTable(headDim: r.headDim, theta: r.theta)))
            bind("K_CACHE_BINDING", .storageBuffer, .write(r.keyCache))
            bind("V_CACHE_BINDING", .storageBuffer, .write(r.valueCache))
            push += [Self.u(r.heads), Self.u(r.kvHeads), Self.u(r.headDim), Self.u(r.startPosition),
                     Self.u(r.startPosition * r.kvHeads * r.headDim)]
            specialization.append(.uint(r.layout == .halfRotation ? 1 : 0))
        }
        let p = try pipeline("matmul_lanes.comp", defines: defines, specialization: specialization, bindings: kinds,
                             pushWords: push.count, subgroups: subgroups)
        let rowsPerGroup = rowsPerInvocation * wg
        var groups = try folded((weight.rows + rowsPerGroup - 1) / rowsPerGroup, what())
        groups.2 = (rows + xRows - 1) / xRows
        guard groups.2 <= device.info.maxWorkgroupCount.2 else { throw fail(what(), "\(rows) rows exceed the device's grid limits") }
        try batch.dispatch(p, bindings, push: push, groups: groups, label: label, group: group)
    }

    // MARK: - Normalization, softmax

    /// y[r, :] = x[r, :] · rsqrt(mean(x[r, :]²) + eps) · weight, rows of `dim` floats
    /// (strides default to dim). y may be x itself (same buffer and offset): then it is bound once.
    public func rmsnorm(_ batch: CommandBatch, x: DeviceBuffer, xOffset: Int = 0, weight: DeviceBuffer,
                        y: DeviceBuffer, yOffset: Int = 0, rows: Int, dim: Int, eps: Float,
                        xStride: Int? = nil, yStride: Int? = nil, label: String = "rmsnorm", group: String = "") throws {
        let what = "rmsnorm '\(label)'"
        try requirePositive(what, ["rows": rows, "dim": dim])
        let xs = xStride ?? dim, ys = yStride ?? dim
        guard xs >= dim, ys >= dim else { throw fail(what, "row strides must be at least dim \(dim)") }
        guard eps >= 0, eps.isFinite else { throw fail(what, "eps must be finite and non-negative, got \(eps)") }
        try requireFloats(what, "x", x, offset: xOffset, span: (rows - 1) * xs + dim)
        try requireFloats(what, "weight", weight, offset: 0, span: dim)
        try requireFloats(what, "y", y, offset: yOffset, span: (rows - 1) * ys + dim)
        let inPlace = x === y
        if inPlace, xOffset != yOffset || xs != ys {
            throw fail(what, "x and y share buffer '\(x.label)' but not the same offset and stride (only exact in-place is supported)")
        }
        let p = try pipeline("rmsnorm.comp", defines: inPlace ? ["IN_PLACE": "1"] : [:],
                             specialization: [Self.u(tuning.reduceWorkgroup)], bindings: inPlace ? 2 : 3, pushWords: 7)
        let bindings: [BufferBinding] = inPlace ? [.readWrite(x), .read(weight)] : [.read(x), .read(weight), .write(y)]
        try batch.dispatch(p, bindings,
                           push: [Self.u(dim), Self.u(rows), .float(eps), Self.u(xOffset), Self.u(xs), Self.u(yOffset), Self.u(ys)],
                           groups: try folded(rows, what), label: label, group: group)
    }

    /// In-place softmax of each row of `cols` floats: row r at `offset + r·stride` (stride defaults to cols).
    public func softmax(_ batch: CommandBatch, x: DeviceBuffer, offset: Int = 0, rows: Int, cols: Int, stride: Int? = nil,
                        label: String = "softmax", group: String = "") throws {
        let what = "softmax '\(label)'"
        try requirePositive(what, ["rows": rows, "cols": cols])
        let s = stride ?? cols
        guard s >= cols else { throw fail(what, "row stride \(s) is shorter than cols \(cols)") }
        try requireFloats(what, "x", x, offset: offset, span: (rows - 1) * s + cols)
        let p = try pipeline("softmax.comp", specialization: [Self.u(tuning.reduceWorkgroup)], bindings: 1, pushWords: 4)
        try batch.dispatch(p, [.readWrite(x)], push: [Self.u(cols), Self.u(rows), Self.u(offset), Self.u(s)],
                           groups: try folded(rows, what), label: label, group: group)
    }

    // MARK: - RoPE

    /// Rotary embedding in place on x[rows, heads, headDim] (at `xOffset`); row r is at position
    /// startPosition + r, pair i turns by pos · theta^(−2i/headDim). See Shaders/rope.comp for how
    /// angles stay accurate at long positions.
    public func rope(_ batch: CommandBatch, x: DeviceBuffer, xOffset: Int = 0, rows: Int, heads: Int, headDim: Int,
                     startPosition: Int, theta: Float, layout: ModelFormats.RopeLayout,
                     label: String = "rope", group: String = "") throws {
        let what = "rope '\(label)'"
        try requirePositive(what, ["rows": rows, "heads": heads, "headDim": headDim])
        guard headDim % 2 == 0 else { throw fail(what, "headDim must be even, got \(headDim)") }
        guard startPosition >= 0, startPosition + rows <= Int(UInt32.max) else {
            throw fail(what, "positions \(startPosition)..<\(startPosition + rows) out of range")
        }
        guard theta > 0, theta.isFinite else { throw fail(what, "theta must be positive, got \(theta)") }
        try requireFloats(what, "x", x, offset: xOffset, span: rows * heads * headDim)
        let table = try ropeTable(headDim: headDim, theta: theta)
        let wg = tuning.elementwiseWorkgroup
        let p = try pipeline("rope.comp", specialization: [Self.u(wg), .uint(layout == .halfRotation ? 1 : 0)], bindings: 2, pushWords: 5)
        let pairs = rows * heads * headDim / 2
        try batch.dispatch(p, [.readWrite(x), .read(table)],
                           push: [Self.u(rows), Self.u(heads), Self.u(headDim), Self.u(startPosition), Self.u(xOffset)],
                           groups: try folded((pairs + wg - 1) / wg, what), label: label, group: group)
    }

    /// RoPE for a stacked projection x[rows, q | k | v] ((heads + 2·kvHeads)·headDim floats per row,
    /// row r at xOffset + r·xStride): Q rotated in place, K rotated into `keyCache` and V copied into
    /// `valueCache` at row startPosition + r (rows of kvHeads·headDim floats). The K and V columns of
    /// x are left as they were. One dispatch instead of rope + two cache copies.
    public func ropeIntoCache(_ batch: CommandBatch, x: DeviceBuffer, xOffset: Int = 0, xStride: Int? = nil, rows: Int,
                              heads: Int, kvHeads: Int, headDim: Int, startPosition: Int, theta: Float,
                              layout: ModelFormats.RopeLayout, keyCache: DeviceBuffer, valueCache: DeviceBuffer,
                              label: String = "rope_kv", group: String = "") throws {
        let what = "rope_kv '\(label)'"
        try requirePositive(what, ["rows": rows, "heads": heads, "kvHeads": kvHeads, "headDim": headDim])
        guard headDim % 2 == 0 else { throw fail(what, "headDim must be even, got \(headDim)") }
        guard startPosition >= 0, startPosition + rows <= Int(UInt32.max) else {
            throw fail(what, "positions \(startPosition)..<\(startPosition + rows) out of range")
        }
        guard theta > 0, theta.isFinite else { throw fail(what, "theta must be positive, got \(theta)") }
        let rowSize = (heads + 2 * kvHeads) * headDim, kvRow = kvHeads * headDim
        let xs = xStride ?? rowSize
        guard xs >= rowSize else { throw fail(what, "x row stride \(xs) is shorter than the \(rowSize) q|k|v columns") }
        guard keyCache !== valueCache, keyCache !== x, valueCache !== x else {
            throw fail(what, "x, the K cache and the V cache must be distinct buffers")
        }
        try requireFloats(what, "x", x, offset: xOffset, span: (rows - 1) * xs + rowSize)
        try requireFloats(what, "K cache", keyCache, offset: startPosition * kvRow, span: rows * kvRow)
        try requireFloats(what, "V cache", valueCache, offset: startPosition * kvRow, span: rows * kvRow)
        let table = try ropeTable(headDim: headDim, theta: theta)
        let wg = tuning.elementwiseWorkgroup
        let p = try pipeline("rope.comp", defines: ["KV_CACHE": "1"],
                             specialization: [Self.u(wg), .uint(layout == .halfRotation ? 1 : 0)], bindings: 4, pushWords: 8)
        let pairs = rows * rowSize / 2
        try batch.dispatch(p, [.readWrite(x), .read(table), .write(keyCache), .write(valueCache)],
                           push: [Self.u(rows), Self.u(heads), Self.u(headDim), Self.u(startPosition), Self.u(xOffset),
                                  Self.u(xs), Self.u(kvHeads), Self.u(startPosition * kvRow)],
                           groups: try folded((pairs + wg - 1) / wg, what), label: label, group: group)
    }

    /// Per-frequency fixed-point turn fractions F_i = round(2⁶⁴ · theta^(−2i/d) / 2π) as (low, high)
    /// 32-bit words, made once per (headDim, theta).
    private func ropeTable(headDim: Int, theta: Float) throws -> DeviceBuffer {
        let key = "\(headDim)/\(theta.bitPattern)"
        lock.lock()
        if let t = ropeTables[key] { lock.unlock(); return t }
        lock.unlock()
        var words: [UInt32] = []
        for i in 0..<(headDim / 2) {
            let turns = pow(Double(theta), -2 * Double(i) / Double(headDim)) / (2 * Double.pi)  // < 1
            let f = UInt64(min((turns * 0x1p64).rounded(), 0x1p64 - 2048))  // 2⁶⁴ itself is not representable
            words.append(UInt32(truncatingIfNeeded: f))
            words.append(UInt32(truncatingIfNeeded: f >> 32))
        }
        let buffer = try DeviceBuffer(device: device, byteCount: words.count * 4, label: "rope table d=\(headDim) theta=\(theta)")
        try buffer.upload(words)
        lock.lock(); defer { lock.unlock() }
        if let t = ropeTables[key] { return t }
        ropeTables[key] = buffer
        return buffer
    }

    // MARK: - Element-wise

    private enum ElementwiseOp: String { case swiglu = "OP_SWIGLU", add = "OP_ADD", mul = "OP_MUL", scale = "OP_SCALE" }

    private func elementwise(_ batch: CommandBatch, _ op: ElementwiseOp, a: DeviceBuffer, aOffset: Int, b: DeviceBuffer?, bOffset: Int,
                             out: DeviceBuffer, outOffset: Int, count: Int, scalar: Float, label: String, group: String) throws {
        let what = "\(op.rawValue.dropFirst(3).lowercased()) '\(label)'"
        try requirePositive(what, ["count": count])
        try requireFloats(what, "a", a, offset: aOffset, span: count)
        if let b { try requireFloats(what, "b", b, offset: bOffset, span: count) }
        try requireFloats(what, "out", out, offset: outOffset, span: count)
        let inPlace = out === a
        if inPlace, outOffset != aOffset {
            throw fail(what, "out shares buffer '\(a.label)' with a at a different offset (only exact in-place is supported)")
        }
        if let b, out === b, !(b === a) {
            if outOffset < bOffset + count, bOffset < outOffset + count {
                throw fail(what, "out overlaps b in buffer '\(b.label)'; pass the aliased operand as a (out may equal a)")
            }
        }
        var defines = [op.rawValue: "1"]
        if inPlace { defines["IN_PLACE"] = "1" }
        let bindingCount = 1 + (b == nil ? 0 : 1) + (inPlace ? 0 : 1)
        let wg = tuning.elementwiseWorkgroup
        let p = try pipeline("elementwise.comp", defines: defines, specialization: [Self.u(wg)], bindings: bindingCount, pushWords: 5)
        var bindings: [BufferBinding] = [inPlace ? .readWrite(a) : .read(a)]
        if let b { bindings.append(.read(b)) }
        if !inPlace { bindings.append(.write(out)) }
        try batch.dispatch(p, bindings,
                           push: [Self.u(count), Self.u(aOffset), Self.u(bOffset), Self.u(outOffset), .float(scalar)],
                           groups: try folded((count + wg - 1) / wg, what), label: label, group: group)
    }

    /// out = silu(gate) · up over `count` floats. out may be gate itself (bound once, in place).
    public func swiglu(_ batch: CommandBatch, gate: DeviceBuffer, gateOffset: Int = 0, up: DeviceBuffer, upOffset: Int = 0,
                       out: DeviceBuffer, outOffset: Int = 0, count: Int, label: String = "swiglu", group: String = "") throws {
        try elementwise(batch, .swiglu, a: gate, aOffset: gateOffset, b: up, bOffset: upOffset, out: out, outOffset: outOffset,
                        count: count, scalar: 0, label: label, group: group)
    }

    /// out = a + b over `count` floats. out may be a itself (the residual stream: bound once, in place).
    public func add(_ batch: CommandBatch, a: DeviceBuffer, aOffset: Int = 0, b: DeviceBuffer, bOffset: Int = 0,
                    out: DeviceBuffer, outOffset: Int = 0, count: Int, label: String = "add", group: String = "") throws {
        try elementwise(batch, .add, a: a, aOffset: aOffset, b: b, bOffset: bOffset, out: out, outOffset: outOffset,
                        count: count, scalar: 0, label: label, group: group)
    }

    /// out = a · b (element-wise) over `count` floats. out may be a itself.
    public func mul(_ batch: CommandBatch, a: DeviceBuffer, aOffset: Int = 0, b: DeviceBuffer, bOffset: Int = 0,
                    out: DeviceBuffer, outOffset: Int = 0, count: Int, label: String = "mul", group: String = "") throws {
        try elementwise(batch, .mul, a: a, aOffset: aOffset, b: b, bOffset: bOffset, out: out, outOffset: outOffset,
                        count: count, scalar: 0, label: label, group: group)
    }

    /// out = x · factor over `count` floats (factor 1 copies). out may be x itself.
    public func scale(_ batch: CommandBatch, x: DeviceBuffer, xOffset: Int = 0, factor: Float,
                      out: DeviceBuffer, outOffset: Int = 0, count: Int, label: String = "scale", group: String = "") throws {
        try elementwise(batch, .scale, a: x, aOffset: xOffset, b: nil, bOffset: 0, out: out, outOffset: outOffset,
                        count: count, scalar: factor, label: label, group: group)
    }

    // MARK: - Embedding

    /// out[r, :] = dequantized row tokens[r] of `table` for r < rows (token ids are uint32 at
    /// `tokenOffset`; out row r at `outOffset + r·outStride`, stride defaults to table.cols).
    /// Ids ≥ table.rows produce a NaN row and never address the table.
    public func embedding(_ batch: CommandBatch, table: VulkanMatrix, tokens: DeviceBuffer, tokenOffset: Int = 0,
                          out: DeviceBuffer, outOffset: Int = 0, rows: Int, outStride: Int? = nil,
                          label: String = "embedding", group: String = "") throws {
        let what = "embedding '\(label)' (\(table.label) \(table.type) [\(table.rows)×\(table.cols)])"
        try requirePositive(what, ["rows": rows])
        let cols = table.cols
        let os = outStride ?? cols
        guard os >= cols else { throw fail(what, "out row stride \(os) is shorter than the \(cols) table columns") }
        try requireFloats(what, "tokens", tokens, offset: tokenOffset, span: rows)  // uint32: same size as floats
        try requireFloats(what, "out", out, offset: outOffset, span: (rows - 1) * os + cols)
        let wg = tuning.elementwiseWorkgroup
        let p = try pipeline("embedding.comp", defines: try Self.weightDefines(table),
                             specialization: [Self.u(wg)], bindings: 3, pushWords: 6)
        let perRow = table.type.isQuantized ? cols / 32 : cols  // invocations per row: a block each, or an element each
        let (_, maxY, maxZ) = device.info.maxWorkgroupCount
        let gy = min(rows, maxY), gz = (rows + maxY - 1) / maxY
        let gx = (perRow + wg - 1) / wg
        guard gx <= device.info.maxWorkgroupCount.0, gz <= maxZ else { throw fail(what, "grid exceeds the device's limits") }
        try batch.dispatch(p, [.read(table.buffer), .read(tokens), .write(out)],
                           push: [Self.u(cols), Self.u(table.rows), Self.u(rows), Self.u(tokenOffset), Self.u(outOffset), Self.u(os)],
                           groups: (gx, gy, gz), label: label, group: group)
    }
}
