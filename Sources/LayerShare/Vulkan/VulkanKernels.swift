import CVulkan
import Foundation
import ModelFormats
import VulkanCompute

/// The transformer's GPU kernels. Every method validates its arguments, then RECORDS one dispatch
/// into the caller's `CommandBatch` (nothing is submitted here); `label`/`group` are passed on to
/// `batch.dispatch` for per-dispatch profiles.
///
/// Offsets, strides and counts are in float32 elements unless named otherwise. Pipelines are made
/// on first use, one per variant (shader file + defines + specialization), and kept here.
public final class VulkanKernels {
    public let library: PipelineLibrary
    public var device: VulkanDevice { library.device }
    public let tuning: Tuning
    /// Subgroup arithmetic (subgroupAdd/Max) usable in compute shaders on this device.
    public let subgroupArithmetic: Bool

    private let lock = NSLock()
    private var pipelines: [String: ComputePipeline] = [:]
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
            "matvec wg \(matvecWorkgroup) rows \(matvecRows) parts \(matvecParts)\(matvecTexelWeights ? " texel" : ""); prefill "
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

    /// Number of pipelines made so far (each one is JIT-compiled by the driver once).
    public var pipelineCount: Int { lock.lock(); defer { lock.unlock() }; return pipelines.count }

    // MARK: - Pipelines

    private func pipeline(_ file: String, defines: [String: String] = [:], specialization: [ShaderScalar],
                          bindings: Int, pushWords: Int) throws -> ComputePipeline {
        try pipeline(file, defines: defines, specialization: specialization,
                     bindings: Array(repeating: .storageBuffer, count: bindings), pushWords: pushWords)
    }

    private func pipeline(_ file: String, defines: [String: String] = [:], specialization: [ShaderScalar],
                          bindings: [DescriptorKind], pushWords: Int) throws -> ComputePipeline {
        var defs = defines
        if subgroupArithmetic { defs["USE_SUBGROUP_ARITH"] = "1" }
        let key = "\(file)|\(defs.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","))|\(specialization.map { String($0.bits) }.joined(separator: ","))"
        lock.lock(); defer { lock.unlock() }
        if let p = pipelines[key] { return p }
        let p = try library.pipeline(file, defines: defs, specialization: specialization, bindingKinds: bindings, pushConstantBytes: pushWords * 4)
        pipelines[key] = p
        return p
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

    private func fail(_ what: String, _ message: String) -> VulkanError {
        VulkanError.invalidArgument("\(what): \(message)")
    }

    /// Checks that `buffer` holds floats [offset, offset + span) and that the indices fit 32 bits.
    private func requireFloats(_ what: String, _ name: String, _ buffer: DeviceBuffer, offset: Int, span: Int) throws {
        guard offset >= 0 else { throw fail(what, "\(name) offset \(offset) is negative") }
        let end = offset + span
        guard end * 4 <= buffer.byteCount else {
            throw fail(what, "\(name) needs floats \(offset)..<\(end) (\(end * 4) bytes) but buffer '\(buffer.label)' has \(buffer.byteCount) bytes")
        }
        guard end <= Int(UInt32.max) else { throw fail(what, "\(name) range exceeds 32-bit indexing") }
    }

    private func requirePositive(_ what: String, _ pairs: KeyValuePairs<String, Int>) throws {
        for (name, value) in pairs where value <= 0 || value > Int(UInt32.max) {
            throw fail(what, "\(name) must be in 1...\(UInt32.max), got \(value)")
        }
    }

    /// Workgroup grid for `n` workgroups, folded into y when n exceeds maxComputeWorkGroupCount.x
    /// (shaders recompute the flat index as y·numX + x and skip the excess).
    private func folded(_ n: Int, _ what: String) throws -> (Int, Int, Int) {
        let (maxX, maxY, _) = device.info.maxWorkgroupCount
        if n <= maxX { return (n, 1, 1) }
        let y = (n + maxX - 1) / maxX
        guard y <= maxY else { throw fail(what, "\(n) workgroups exceed the device's grid limits") }
        return (maxX, y, 1)
    }

    private static func u(_ v: Int) -> ShaderScalar { .uint(UInt32(v)) }

    // MARK: - Matrix products

    /// y[r, o] = Σ_i x[r, i] · W[o, i] for r < rows: x row r at `xOffset + r·xStride` (cols floats),
    /// y row r at `yOffset + r·yStride` (weight.rows floats). Strides default to packed rows.
    /// rows == 1 uses the decode matrix–vector kernel, rows > 1 the prefill kernel chosen by `tuning`.
    public func matmul(_ batch: CommandBatch, weight: VulkanMatrix, x: DeviceBuffer, xOffset: Int = 0,
                       y: DeviceBuffer, yOffset: Int = 0, rows: Int, xStride: Int? = nil, yStride: Int? = nil,
                       label: String, group: String = "") throws {
        let what = "matmul '\(label)' (\(weight.label) \(weight.type) [\(weight.rows)×\(weight.cols)])"
        let cols = weight.cols, outRows = weight.rows
        let xs = xStride ?? cols, ys = yStride ?? outRows
        try requirePositive(what, ["rows": rows])
        guard weight.buffer.device === device, x.device === device, y.device === device else {
            throw fail(what, "buffers belong to a different device than the kernels")
        }
        guard xs >= cols else { throw fail(what, "x row stride \(xs) is shorter than the \(cols) weight columns") }
        guard ys >= outRows else { throw fail(what, "y row stride \(ys) is shorter than the \(outRows) weight rows") }
        if weight.type.isQuantized, cols % 32 != 0 {
            throw fail(what, "\(weight.type) needs a multiple of 32 columns, got \(cols)")
        }
        let xSpan = (rows - 1) * xs + cols, ySpan = (rows - 1) * ys + outRows
        try requireFloats(what, "x", x, offset: xOffset, span: xSpan)
        try requireFloats(what, "y", y, offset: yOffset, span: ySpan)
        if x === y, xOffset < yOffset + ySpan, yOffset < xOffset + xSpan {
            throw fail(what, "x and y overlap in buffer '\(x.label)'")
        }
        let typeDefine = try Self.typeDefine(weight.type)
        let t = tuning
        if rows == 1 || t.prefillRegisterBlocked {
            let (wRows, xRows) = rows == 1 ? (t.matvecRows, 1) : (t.prefillWeightRows, t.prefillActivationRows)
            let view = t.matvecTexelWeights ? weight.texelView : nil
            // x through its cached RGBA32F view too (with texel weights) when every 4-float group
            // the kernel reads is one whole texel inside the view; else as a storage buffer.
            let xView = view != nil && t.texelActivations && xOffset % 4 == 0 && xs % 4 == 0 ? x.floatTexelView : nil
            let xTexel = xView.map { xOffset + xSpan <= $0.texelCount * 4 } ?? false
            var defines = [typeDefine: "1"]
            if view != nil { defines["WEIGHTS_TEXEL"] = "1" }
            if xTexel { defines["X_TEXEL"] = "1" }
            // Quantized prefill with prefillLanes: matmul_lanes.comp, wRows weight rows per
            // invocation (so wRows·workgroup per workgroup); else matvec.comp, wRows per workgroup.
            let lanes = rows > 1 && t.prefillLanes && weight.type.isQuantized
            if !lanes { defines["PARTS"] = "\(t.matvecParts)u" }
            let p = try pipeline(lanes ? "matmul_lanes.comp" : "matvec.comp", defines: defines,
                                 specialization: [Self.u(t.matvecWorkgroup), Self.u(wRows), Self.u(xRows)],
                                 bindings: [view != nil ? .uniformTexelBuffer : .storageBuffer, xTexel ? .uniformTexelBuffer : .storageBuffer, .storageBuffer],
                                 pushWords: 7)
            let rowsPerGroup = lanes ? wRows * t.matvecWorkgroup : wRows
            var groups = try folded((outRows + rowsPerGroup - 1) / rowsPerGroup, what)
            groups.2 = (rows + xRows - 1) / xRows
            guard groups.2 <= device.info.maxWorkgroupCount.2 else { throw fail(what, "\(rows) rows exceed the device's grid limits") }
            try batch.dispatch(p, [view.map { .texels($0) } ?? .read(weight.buffer), xTexel ? .texels(xView!) : .read(x), .write(y)],
                               push: [Self.u(cols), Self.u(outRows), Self.u(xOffset), Self.u(yOffset), Self.u(rows), Self.u(xs), Self.u(ys)],
                               groups: groups, label: label, group: group)
        } else {
            let invocations = (t.gemmBM / t.gemmTM) * (t.gemmBN / t.gemmTN)
            let p = try pipeline("matmul.comp", defines: [typeDefine: "1"],
                                 specialization: [Self.u(invocations), Self.u(t.gemmBM), Self.u(t.gemmBN), Self.u(t.gemmTM), Self.u(t.gemmTN)],
                                 bindings: 3, pushWords: 7)
            let gx = (outRows + t.gemmBM - 1) / t.gemmBM, gy = (rows + t.gemmBN - 1) / t.gemmBN
            guard gx <= device.info.maxWorkgroupCount.0, gy <= device.info.maxWorkgroupCount.1 else {
                throw fail(what, "\(gx)×\(gy) workgroups exceed the device's grid limits")
            }
            try batch.dispatch(p, [.read(weight.buffer), .read(x), .write(y)],
                               push: [Self.u(cols), Self.u(outRows), Self.u(rows), Self.u(xOffset), Self.u(xs), Self.u(yOffset), Self.u(ys)],
                               groups: (gx, gy, 1), label: label, group: group)
        }
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

    /// The residual add fused with the norm that follows it: x[r, :] += residual[r, :], then
    /// y[r, :] = rmsnorm(x[r, :]) · weight (rmsnorm.comp with RESIDUAL). x is updated in place;
    /// y and residual must not overlap x. Strides default to dim.
    public func addRMSNorm(_ batch: CommandBatch, x: DeviceBuffer, xOffset: Int = 0, residual: DeviceBuffer, residualOffset: Int = 0,
                           weight: DeviceBuffer, y: DeviceBuffer, yOffset: Int = 0, rows: Int, dim: Int, eps: Float,
                           xStride: Int? = nil, residualStride: Int? = nil, yStride: Int? = nil,
                           label: String = "add_rmsnorm", group: String = "") throws {
        let what = "add_rmsnorm '\(label)'"
        try requirePositive(what, ["rows": rows, "dim": dim])
        let xs = xStride ?? dim, rs = residualStride ?? dim, ys = yStride ?? dim
        guard xs >= dim, rs >= dim, ys >= dim else { throw fail(what, "row strides must be at least dim \(dim)") }
        guard eps >= 0, eps.isFinite else { throw fail(what, "eps must be finite and non-negative, got \(eps)") }
        let xSpan = (rows - 1) * xs + dim, rSpan = (rows - 1) * rs + dim, ySpan = (rows - 1) * ys + dim
        try requireFloats(what, "x", x, offset: xOffset, span: xSpan)
        try requireFloats(what, "residual", residual, offset: residualOffset, span: rSpan)
        try requireFloats(what, "weight", weight, offset: 0, span: dim)
        try requireFloats(what, "y", y, offset: yOffset, span: ySpan)
        for (name, b, o, span) in [("residual", residual, residualOffset, rSpan), ("y", y, yOffset, ySpan)]
        where b === x && o < xOffset + xSpan && xOffset < o + span {
            throw fail(what, "\(name) overlaps x in buffer '\(x.label)'")
        }
        let p = try pipeline("rmsnorm.comp", defines: ["RESIDUAL": "1"],
                             specialization: [Self.u(tuning.reduceWorkgroup)], bindings: 4, pushWords: 9)
        try batch.dispatch(p, [.readWrite(x), .read(weight), .write(y), .read(residual)],
                           push: [Self.u(dim), Self.u(rows), .float(eps), Self.u(xOffset), Self.u(xs), Self.u(yOffset), Self.u(ys),
                                  Self.u(residualOffset), Self.u(rs)],
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
        let p = try pipeline("embedding.comp", defines: [try Self.typeDefine(table.type): "1"],
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
