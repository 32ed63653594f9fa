import Foundation
import VulkanCompute

/// The choices the Vulkan host code makes from what kind of device it runs on: product launch
/// shapes, how weights, activations and KV caches are read, which attention kernels decode, and how
/// results come back to the host. `defaults(for:)` computes them from a `DeviceInfo` (and the
/// LAYERSHARE_* overrides kept for A/B measurements) in this one place.
///
/// `defaults(for:as:)` gives another kind of device's choices on this one: a discrete GPU's on
/// lavapipe runs the GPU paths (row-major storage-buffer weights, matvec.comp decode, tiled
/// matmul.comp prefill, the non-lanes decode attention, staged reads) so tests cover them without a
/// GPU. Limits always stay the real device's (subgroup size, shared memory, workgroup sizes): the
/// shaders are compiled for them.
public struct KernelTuning: Sendable, CustomStringConvertible {
    // MARK: Products

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
    /// fused forms (`product(input:output:)`), which save dispatches: on lavapipe each costs ~50 µs.
    /// (Q8_0 ran slower in lanes than in matvec.comp while weights were row-major; with tiled
    /// weights the Q8_0 LM head is faster in lanes: decode 25.5–26.9 → 28.6–29.9 tok/s.)
    public var decodeLanesRows: Int = 0
    /// F32/F16/BF16 weights whose rows are whole 32-element blocks use matmul_lanes.comp (and its
    /// fusions) wherever the quantized types do (Shaders/float_blocks.glsl), reading the rows as
    /// stored through the same texel views. LAYERSHARE_FLOAT_LANES=0 keeps them on matvec.comp's
    /// per-element path (A/B runs).
    public var floatLanes: Bool = true
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

    // MARK: Attention

    /// Decode (attention_decode.comp, attention_apply.comp) reads the K/V caches through their cached
    /// RGBA32F texel views (DeviceBuffer.floatTexelView) when this is set and the views exist; else as
    /// storage buffers. On by default for CPU devices: lavapipe loads storage buffers with a per-lane
    /// scalar loop but gathers 16-byte texels with vector code (~0.5 vs ~7 GB/s), and decode attention
    /// is a K/V stream. GPUs keep storage buffers. LAYERSHARE_ATTENTION_TEXEL=0/1 overrides (A/B runs).
    public var attentionTexelCaches: Bool = false
    /// Decode through texel views uses attention_decode_lanes.comp (lanes own keys: no cross-lane
    /// operation in the key loop) instead of attention_decode.comp's texel path, and
    /// `applyProbabilities` attention_apply.comp's LANES_OWN_KEYS form. On by default where texel
    /// caches are and the device has subgroup ballot: on lavapipe a decode layer at ~170 keys took
    /// 137 µs instead of 225 µs single-threaded (more at long contexts; BENCHMARKS.md).
    /// LAYERSHARE_ATTENTION_LANES=0/1 overrides.
    public var attentionLanesDecode: Bool = false

    // MARK: Reads

    /// VulkanBackend reads results through a reused host-visible staging buffer filled at the end
    /// of the step's batch (the path of devices without unified memory) instead of mapping them.
    public var stagedReads: Bool = false

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

    // MARK: - Defaults

    /// The choices for `info`'s device, or (with `kind`) for a device of that kind with `info`'s
    /// limits. `environment` holds the LAYERSHARE_* overrides (the process's by default).
    public static func defaults(for info: DeviceInfo, as kind: DeviceInfo.Kind? = nil,
                                environment: [String: String] = ProcessInfo.processInfo.environment) -> KernelTuning {
        let kind = kind ?? info.kind
        let subgroup = max(1, info.subgroupSize)
        var t = kind == .cpu ? cpuDriver(subgroup: subgroup) : gpu(subgroup: subgroup)
        // A real discrete GPU never has unified memory (DeviceInfo.unifiedMemory), so this is
        // `!info.unifiedMemory` on every real device.
        t.stagedReads = kind == .discreteGPU || !info.unifiedMemory
        t.applyOverrides(environment, ballot: info.supportsSubgroupBallot)
        t.fit(info)
        return t
    }

    private static func cpuDriver(subgroup: Int) -> KernelTuning {
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
        var t = KernelTuning(matvecWorkgroup: floorPow2(subgroup), matvecRows: 64, matvecParts: 1,
                             prefillRegisterBlocked: true, prefillWeightRows: 8, prefillActivationRows: 8,
                             gemmBM: 64, gemmBN: 32, gemmTM: 4, gemmTN: 4,
                             reduceWorkgroup: floorPow2(subgroup * 8), elementwiseWorkgroup: floorPow2(subgroup * 8),
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
        t.weightTileRows = max(1, t.decodeLanesRows / 2) * floorPow2(subgroup)
        t.attentionTexelCaches = true
        return t
    }

    private static func gpu(subgroup: Int) -> KernelTuning {
        // GPUs: enough invocations per row that short rows (576 = 18 blocks) still fill
        // a few subgroups; a quarter block per invocation.
        KernelTuning(matvecWorkgroup: max(64, floorPow2(subgroup)), matvecRows: 2, matvecParts: 4,
                     prefillRegisterBlocked: false, prefillWeightRows: 2, prefillActivationRows: 4,
                     gemmBM: 64, gemmBN: 64, gemmTM: 4, gemmTN: 4,
                     reduceWorkgroup: 256, elementwiseWorkgroup: 256)
    }

    /// The LAYERSHARE_* overrides (for A/B measurements).
    private mutating func applyOverrides(_ env: [String: String], ballot: Bool) {
        // LAYERSHARE_PREFILL_TILE=WxA (weight rows × activation rows per workgroup) and
        // LAYERSHARE_TEXEL_X=0 override the register-blocked prefill.
        if let tile = env["LAYERSHARE_PREFILL_TILE"]?.split(separator: "x").compactMap({ Int($0) }), tile.count == 2, tile.allSatisfy({ $0 > 0 }) {
            prefillWeightRows = tile[0]; prefillActivationRows = tile[1]
        }
        if env["LAYERSHARE_TEXEL_X"] == "0" { texelActivations = false }
        if env["LAYERSHARE_PREFILL_LANES"] == "0" { prefillLanes = false }
        if let n = env["LAYERSHARE_DECODE_LANES"].flatMap({ Int($0) }), n >= 0 { decodeLanesRows = n }
        if let n = env["LAYERSHARE_WEIGHT_TILE"].flatMap({ Int($0) }), n > 0, n & (n - 1) == 0 { weightTileRows = n }
        if let texel = Self.flag(env["LAYERSHARE_TEXEL_WEIGHTS"]) { matvecTexelWeights = texel }
        if let lanes = Self.flag(env["LAYERSHARE_FLOAT_LANES"]) { floatLanes = lanes }
        if let texel = Self.flag(env["LAYERSHARE_ATTENTION_TEXEL"]) { attentionTexelCaches = texel }
        // The lanes decode kernel needs subgroup ballot; by default it runs wherever caches are texels.
        attentionLanesDecode = (Self.flag(env["LAYERSHARE_ATTENTION_LANES"]) ?? attentionTexelCaches) && ballot
    }

    /// "0" / "1" as false / true; anything else: no override.
    private static func flag(_ value: String?) -> Bool? {
        switch value {
        case "0": return false
        case "1": return true
        default: return nil
        }
    }

    /// Caps workgroups at the device's invocation limit and shrinks the GEMM tile until it fits
    /// the shared memory and invocation limits.
    private mutating func fit(_ info: DeviceInfo) {
        let maxInvocations = max(1, info.maxWorkgroupInvocations)
        let cap = Self.floorPow2(min(maxInvocations, 1024))
        matvecWorkgroup = min(matvecWorkgroup, cap)
        reduceWorkgroup = min(reduceWorkgroup, cap)
        elementwiseWorkgroup = min(elementwiseWorkgroup, cap)
        while (gemmBM / gemmTM) * (gemmBN / gemmTN) > maxInvocations || 32 * (gemmBM + gemmBN) * 4 > info.maxSharedMemory {
            if gemmBN > gemmTN { gemmBN /= 2 } else if gemmBM > gemmTM { gemmBM /= 2 } else { break }
        }
    }

    /// The largest power of two ≤ n (1 for n < 2).
    private static func floorPow2(_ n: Int) -> Int { var p = 1; while p * 2 <= n { p *= 2 }; return p }

    // MARK: - Validation

    /// Throws unless the launch shapes are well formed and fit `info`'s limits.
    public func validate(for info: DeviceInfo) throws {
        func isPow2(_ n: Int) -> Bool { n > 0 && n & (n - 1) == 0 }
        guard isPow2(matvecWorkgroup), isPow2(reduceWorkgroup), isPow2(elementwiseWorkgroup),
              [1, 2, 4].contains(matvecParts), matvecRows >= 1, prefillWeightRows >= 1, prefillActivationRows >= 1,
              decodeLanesRows >= 0,
              gemmBM % gemmTM == 0, gemmBN % gemmTN == 0 else {
            throw VulkanError.invalidArgument("VulkanKernels: invalid tuning \(self)")
        }
        let gemmInvocations = (gemmBM / gemmTM) * (gemmBN / gemmTN)
        let invocations = [matvecWorkgroup, reduceWorkgroup, elementwiseWorkgroup, gemmInvocations]
        guard invocations.allSatisfy({ $0 <= info.maxWorkgroupInvocations }) else {
            throw VulkanError.invalidArgument("VulkanKernels: tuning \(self) exceeds maxComputeWorkGroupInvocations \(info.maxWorkgroupInvocations)")
        }
        let shared = [matvecRows * matvecWorkgroup * 4, prefillWeightRows * prefillActivationRows * matvecWorkgroup * 4,
                      32 * (gemmBM + gemmBN) * 4, reduceWorkgroup * 4]
        guard shared.allSatisfy({ $0 <= info.maxSharedMemory }) else {
            throw VulkanError.invalidArgument("VulkanKernels: tuning \(self) needs more than the \(info.maxSharedMemory) bytes of shared memory")
        }
    }

    public var description: String {
        "matvec wg \(matvecWorkgroup) rows \(matvecRows) parts \(matvecParts)\(matvecTexelWeights ? " texel" : "")"
            + (decodeLanesRows > 0 ? " (decode in lanes, \(decodeLanesRows) rows\(floatLanes ? ", float weights too" : ""))" : "")
            + (weightTileRows > 1 ? "; weights in tiles of \(weightTileRows) rows" : "") + "; prefill "
            + (prefillRegisterBlocked ? "register-blocked\(prefillLanes ? " lanes" : "") \(prefillWeightRows)x\(prefillActivationRows)\(texelActivations ? " texel-x" : "")" : "tiled") + "; gemm \(gemmBM)x\(gemmBN) tile \(gemmTM)x\(gemmTN); "
            + "reduce wg \(reduceWorkgroup); elementwise wg \(elementwiseWorkgroup); attention "
            + (attentionTexelCaches ? "texel caches" : "storage caches") + (attentionLanesDecode ? ", lanes decode" : "")
            + (stagedReads ? "; staged reads" : "")
    }
}
