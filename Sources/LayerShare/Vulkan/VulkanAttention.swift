import Foundation
import VulkanCompute

/// Fused causal grouped-query attention on Vulkan (Shaders/attention*.comp).
///
/// Layouts (float32): Q and O `[n, heads, headDim]` for positions `startPosition ..< startPosition + n`;
/// K and V caches `[capacity, kvHeads, headDim]`, positions `0 ..< startPosition + n` valid. Query head
/// `h` reads kv head `h / (heads / kvHeads)`; row `i` sees keys `0 ... startPosition + i`.
///
/// Work split (GQA-aware: a workgroup always serves one kv head and the `heads / kvHeads` query heads
/// sharing it, so each K/V row is read once per group instead of once per query head):
/// - Prefill (`n > 1`, attention.comp): the decode kernel's register/subgroup design with several
///   query rows per subgroup: each subgroup owns a block of rows × the group's query heads, lanes own
///   head dimensions (Q and accumulators in registers, wide K/V loads each serving every vector of
///   the block), online softmax over chunks of keys, stopping at the block's last visible key. No
///   shared memory, no barriers; (row blocks / subgroups per workgroup) × kv heads workgroups.
/// - Decode (`n == 1`, attention_decode.comp): the key range is split across workgroups
///   (flash-decoding), ≥ 256 keys per split and at most `maxSplits` splits; inside a workgroup each
///   subgroup runs its own online softmax over chunks of keys with Q and the accumulators in
///   registers, merged at the end. With more than one split, partials go to the caller's scratch
///   buffer and attention_merge.comp combines them with log-sum-exp. On CPU devices K/V are read
///   through float texel views (see `texelCaches`).
///
/// Only records into the caller's `CommandBatch`; never submits.
public final class VulkanAttention {
    public let library: PipelineLibrary
    public var device: VulkanDevice { library.device }

    /// Fewest keys a decode split covers; more keys per split only once `maxSplits` is reached.
    public static let minSplitLength = 256
    /// Upper bound on decode splits (bounds the scratch buffer and the merge's loop).
    public static let maxSplits = 64
    /// Query rows per prefill subgroup (at most; fewer when registers would not suffice), the
    /// per-lane float budget for their Q, accumulators and scores (GPUs / CPU drivers), and keys per
    /// online-softmax step.
    static let prefillRows = 16
    static let prefillFloatsPerLane = 96
    static let prefillFloatsPerLaneCPU = 1024
    /// 2, not 4: nearly as fast on lavapipe (64 vs 62 ms for n = 512) with half the unrolled code,
    /// i.e. half the driver's JIT time per variant.
    static let prefillChunk = 2
    /// Subgroups per decode workgroup, and keys per online-softmax step of a subgroup.
    static let decodeSubgroups = 4
    static let decodeChunk = 4
    static let mergeWorkgroup = 64

    /// How one call is distributed (exposed for tests and profiles).
    public struct Plan: CustomStringConvertible {
        public let kernel: String
        public let rowsPerWorkgroup: Int
        /// Keys per step: the score tile (prefill) or the chunk of a subgroup's online softmax (decode).
        public let keysPerStep: Int
        public let workgroupSize: Int
        public let splits: Int
        public let splitLength: Int
        public let workgroups: (Int, Int, Int)
        public let sharedBytes: Int
        public let merges: Bool

        public var description: String {
            "\(kernel): rows/wg \(rowsPerWorkgroup), keys/step \(keysPerStep), wg \(workgroupSize), "
                + "splits \(splits)×\(splitLength), grid \(workgroups), shared \(sharedBytes) B\(merges ? ", merge" : "")"
        }
    }

    /// A compiled variant of the main kernels with its launch shape.
    private struct KernelConfig {
        let file: String
        let defines: [String: String]
        let rows: Int
        let keysPerStep: Int
        let workgroup: Int
        let sharedBytes: Int
    }

    private let lock = NSLock()
    private var configs: [String: KernelConfig] = [:]

    /// Decode (attention_decode.comp, attention_apply.comp) reads the K/V caches through their cached
    /// RGBA32F texel views where the views exist; else as storage buffers. From
    /// `KernelTuning.attentionTexelCaches` (why: see there).
    public var texelCaches: Bool
    /// Decode through texel views uses attention_decode_lanes.comp (lanes own keys) instead of
    /// attention_decode.comp's texel path, and `applyProbabilities` attention_apply.comp's
    /// LANES_OWN_KEYS form. From `KernelTuning.attentionLanesDecode` (why: see there).
    public var lanesDecode: Bool

    /// `tuning` defaults to `KernelTuning.defaults(for:)` of the device.
    public init(library: PipelineLibrary, tuning: KernelTuning? = nil) {
        self.library = library
        let t = tuning ?? KernelTuning.defaults(for: library.device.info)
        texelCaches = t.attentionTexelCaches
        lanesDecode = t.attentionLanesDecode
    }

    /// The float texel views of `buffers` if decode should read them as texels: every head row is
    /// whole texels (headDim % 4 == 0, so rows start on texel boundaries) and the views cover `bytes`.
    private func texelViews(_ buffers: [DeviceBuffer], bytes: Int, headDim d: Int) -> [TexelBufferView]? {
        guard texelCaches, d % 4 == 0 else { return nil }
        let views = buffers.compactMap { b in b.floatTexelView.flatMap { $0.range >= bytes ? $0 : nil } }
        return views.count == buffers.count ? views : nil
    }

    // MARK: - Sizes

    /// Head dimensions the kernels accept: multiples of 16 up to 256 (SmolLM2 / Llama use 64 and 128).
    public static func supportsHeadDim(_ d: Int) -> Bool { d >= 16 && d <= 256 && d % 16 == 0 }

    /// Decode split layout for a context of `T` keys: `count` splits of `length` keys (the last shorter).
    public static func splitLayout(context t: Int) -> (length: Int, count: Int) {
        var length = minSplitLength
        while (t + length - 1) / length > maxSplits { length *= 2 }
        return (length, max(1, (t + length - 1) / length))
    }

    /// Scratch bytes `attention` needs for decode (and probability emission) at any context up to
    /// `maxContext`: one (output, max, sum) partial per split and head. Prefill needs none.
    public static func scratchBytes(heads: Int, headDim: Int, maxContext: Int) -> Int {
        // splitLayout's count is ≤ min(maxSplits, ⌈T/minSplitLength⌉), which only grows with T.
        let splits = max(1, min(maxSplits, (maxContext + minSplitLength - 1) / minSplitLength))
        return partialBytes(splits: splits, rows: 1, heads: heads, headDim: headDim)
    }

    static func partialBytes(splits: Int, rows: Int, heads: Int, headDim: Int) -> Int {
        splits * rows * heads * (headDim + 2) * 4
    }

    // MARK: - Attention

    /// Plans a call without recording it (validates the shape, not buffers).
    public func plan(rows n: Int, startPosition: Int, heads: Int, kvHeads: Int, headDim: Int,
                     emitsProbabilities: Bool = false, label: String = "attention") throws -> Plan {
        try Self.checkShape(heads: heads, kvHeads: kvHeads, headDim: headDim, label)
        guard n >= 1 else { throw VulkanError.invalidArgument("\(label): rows n must be ≥ 1, got \(n)") }
        guard startPosition >= 0 else { throw VulkanError.invalidArgument("\(label): startPosition must be ≥ 0, got \(startPosition)") }
        let config = try kernelConfig(headDim: headDim, group: heads / kvHeads, decode: n == 1)
        let total = startPosition + n
        let (length, splits) = n == 1 ? Self.splitLayout(context: total) : (total, 1)
        return Plan(kernel: config.file, rowsPerWorkgroup: config.rows, keysPerStep: config.keysPerStep, workgroupSize: config.workgroup,
                    splits: splits, splitLength: length,
                    workgroups: (kvHeads, (n + config.rows - 1) / config.rows, splits),
                    sharedBytes: config.sharedBytes, merges: splits > 1 || emitsProbabilities)
    }

    /// Records O = softmax(Q·Kᵀ·scale + causal mask)·V into `batch`.
    ///
    /// - scratch: split-K partials; needs `scratchBytes(heads:headDim:maxContext:)` for decode
    ///   (`n == 1`) when the context exceeds one split or probabilities are emitted. Bound but
    ///   unused otherwise (any non-empty buffer).
    /// - probabilities: decode only; receives P `[heads, startPosition + 1]` (softmax rows).
    /// - window: sliding window; row i then sees keys startPosition + i − window < k ≤ startPosition + i
    ///   (a `WINDOW` variant of each kernel).
    public func attention(_ batch: CommandBatch, q: DeviceBuffer, k: DeviceBuffer, v: DeviceBuffer,
                          out: DeviceBuffer, scratch: DeviceBuffer, rows n: Int, startPosition: Int,
                          heads: Int, kvHeads: Int, headDim d: Int, scale: Float,
                          probabilities: DeviceBuffer? = nil, window: Int? = nil, label: String, group: String = "") throws {
        if let window {
            guard window >= 1 else { throw VulkanError.invalidArgument("\(label): sliding window must be ≥ 1, got \(window)") }
            guard probabilities == nil else {
                throw VulkanError.invalidArgument("\(label): probabilities cannot be emitted from a sliding-window layer")
            }
        }
        let plan = try self.plan(rows: n, startPosition: startPosition, heads: heads, kvHeads: kvHeads,
                                 headDim: d, emitsProbabilities: probabilities != nil, label: label)
        guard scale.isFinite else { throw VulkanError.invalidArgument("\(label): scale must be finite, got \(scale)") }
        let total = startPosition + n
        let qBytes = n * heads * d * 4
        let cacheBytes = total * kvHeads * d * 4
        try Self.require(q, qBytes, "\(label): Q", "\(n) rows × \(heads) heads × \(d)")
        try Self.require(out, qBytes, "\(label): output", "\(n) rows × \(heads) heads × \(d)")
        try Self.require(k, cacheBytes, "\(label): K cache", "positions 0..<\(total) × \(kvHeads) kv heads × \(d)")
        try Self.require(v, cacheBytes, "\(label): V cache", "positions 0..<\(total) × \(kvHeads) kv heads × \(d)")
        try Self.distinct(out, from: [q, k, v, scratch], "\(label): output")
        try Self.distinct(scratch, from: [q, k, v], "\(label): scratch")
        var probBytes = 0
        if let probabilities {
            guard n == 1 else {
                throw VulkanError.invalidArgument("\(label): probabilities can only be emitted for decode (rows n == 1), got n = \(n)")
            }
            probBytes = heads * total * 4
            try Self.require(probabilities, probBytes, "\(label): probabilities", "\(heads) heads × \(total) keys")
            try Self.distinct(probabilities, from: [q, k, v, out, scratch], "\(label): probabilities")
        }
        let partialBytes = Self.partialBytes(splits: plan.splits, rows: n, heads: heads, headDim: d)
        if plan.merges, scratch.byteCount < partialBytes {
            throw VulkanError.invalidArgument(
                "\(label): scratch buffer '\(scratch.label)' holds \(scratch.byteCount) bytes, but \(plan.splits) split(s) over \(total) keys "
                    + "need \(partialBytes) (size it with VulkanAttention.scratchBytes(heads:headDim:maxContext:))")
        }

        // Decode only: prefill (attention.comp) is compute-bound and keeps storage buffers.
        let kvViews = n == 1 ? texelViews([k, v], bytes: cacheBytes, headDim: d) : nil
        // The lanes decode kernel reads texels only; without views the standard decode kernel runs.
        let config = try kernelConfig(headDim: d, group: heads / kvHeads, decode: n == 1, lanes: kvViews == nil ? false : nil)
        var defines = config.defines
        // A window at least the context is no window: the plain kernel (one variant fewer to compile).
        if let window, window < total { defines["WINDOW"] = "\(window)" }
        // attention_decode_lanes.comp always reads texels; the other kernels choose by KV_TEXEL.
        if kvViews != nil, config.file != "attention_decode_lanes.comp" { defines["KV_TEXEL"] = "1" }
        let kvKind: DescriptorKind = kvViews != nil ? .uniformTexelBuffer : .storageBuffer
        let main = try library.pipeline(config.file, defines: defines,
                                        bindingKinds: [.storageBuffer, kvKind, kvKind, .storageBuffer, .storageBuffer, .storageBuffer],
                                        pushConstantBytes: 28, subgroups: subgroupRequirement(workgroup: config.workgroup))
        let flags: UInt32 = (plan.merges ? 1 : 0) | (probabilities != nil ? 2 : 0)
        // Bindings a mode does not use point at the scratch buffer (or O) tagged as read, so they add
        // no false write hazards to the batch.
        let outBinding: BufferBinding = plan.merges ? .read(out, range: qBytes) : .write(out, range: qBytes)
        let scratchBinding: BufferBinding = plan.merges ? .write(scratch, range: partialBytes) : .read(scratch)
        let probBinding: BufferBinding = probabilities.map { .write($0, range: probBytes) } ?? .read(scratch)
        try batch.dispatch(main, [
            .read(q, range: qBytes),
            kvViews.map { .texels($0[0]) } ?? .read(k, range: cacheBytes),
            kvViews.map { .texels($0[1]) } ?? .read(v, range: cacheBytes),
            outBinding, scratchBinding, probBinding,
        ], push: [
            .uint(UInt32(n)), .uint(UInt32(startPosition)), .uint(UInt32(kvHeads)),
            .uint(UInt32(plan.splitLength)), .uint(UInt32(plan.splits)), .uint(flags), .float(scale),
        ], groups: plan.workgroups, label: label, group: group)
        guard plan.merges else { return }

        let merge = try library.pipeline("attention_merge.comp", defines: [
            "HEAD_DIM": "\(d)", "WG_SIZE": "\(Self.mergeWorkgroup)",
        ], bindings: 3, pushConstantBytes: 20)
        try batch.dispatch(merge, [
            .read(scratch, range: partialBytes), .write(out, range: qBytes),
            probabilities.map { .readWrite($0, range: probBytes) } ?? .read(scratch, range: partialBytes),
        ], push: [
            .uint(UInt32(n)), .uint(UInt32(heads)), .uint(UInt32(plan.splits)), .uint(UInt32(total)),
            .uint(flags),
        ], groups: (heads, n, 1), label: label + ".merge", group: group)
    }

    // MARK: - Applying probabilities (Shared Attention)

    /// Records O[h, :] = Σ_t P[h, t] · V[t, h / (heads / kvHeads), :] for one query row (decode),
    /// with P `[heads, T]` (e.g. emitted by `attention` for another layer) and this layer's V cache.
    /// `out` receives `[heads, headDim]`.
    public func applyProbabilities(_ batch: CommandBatch, probabilities: DeviceBuffer, v: DeviceBuffer,
                                   out: DeviceBuffer, context t: Int, heads: Int, kvHeads: Int, headDim d: Int,
                                   label: String, group: String = "") throws {
        try Self.checkShape(heads: heads, kvHeads: kvHeads, headDim: d, label)
        guard t >= 1 else { throw VulkanError.invalidArgument("\(label): context T must be ≥ 1, got \(t)") }
        let groupSize = heads / kvHeads
        let probBytes = heads * t * 4
        let cacheBytes = t * kvHeads * d * 4
        let outBytes = heads * d * 4
        try Self.require(probabilities, probBytes, "\(label): probabilities", "\(heads) heads × \(t) keys")
        try Self.require(v, cacheBytes, "\(label): V cache", "positions 0..<\(t) × \(kvHeads) kv heads × \(d)")
        try Self.require(out, outBytes, "\(label): output", "\(heads) heads × \(d)")
        try Self.distinct(out, from: [probabilities, v], "\(label): output")
        // Same lane ↔ dimension layout as the decode kernel; partial sums of the subgroups in shared memory.
        let info = device.info
        let subgroup = max(1, info.subgroupSize)
        var subgroups = max(1, min(Self.decodeSubgroups, info.maxWorkgroupInvocations / subgroup))
        while subgroups > 1, 4 * subgroups * groupSize * d > info.maxSharedMemory { subgroups /= 2 }
        guard 4 * subgroups * groupSize * d <= info.maxSharedMemory else {
            throw VulkanError.invalidArgument(
                "\(label): \(groupSize) query heads per kv head with head dim \(d) need \(4 * groupSize * d) bytes of shared memory "
                    + "in attention_apply, the device offers \(info.maxSharedMemory)")
        }
        let vView = texelViews([v], bytes: cacheBytes, headDim: d)?.first
        // CPU drivers: lanes own keys (see the shader), one subgroup per workgroup.
        let lanesOwnKeys = lanesDecode && vView != nil
        if lanesOwnKeys { subgroups = 1 }
        var defines = [
            "HEAD_DIM": "\(d)", "GROUP": "\(groupSize)", "SUBGROUP": "\(subgroup)", "NSUB": "\(subgroups)",
            "WG_SIZE": "\(subgroup * subgroups)",
        ]
        if vView != nil { defines["KV_TEXEL"] = "1" }
        if lanesOwnKeys { defines["LANES_OWN_KEYS"] = "1" }
        let pipeline = try library.pipeline("attention_apply.comp", defines: defines,
                                            bindingKinds: [.storageBuffer, vView != nil ? .uniformTexelBuffer : .storageBuffer, .storageBuffer],
                                            pushConstantBytes: 8, subgroups: subgroupRequirement(workgroup: subgroup * subgroups))
        try batch.dispatch(pipeline, [
            .read(probabilities, range: probBytes), vView.map { .texels($0) } ?? .read(v, range: cacheBytes),
            .write(out, range: outBytes),
        ], push: [.uint(UInt32(t)), .uint(UInt32(kvHeads))],
        groups: (kvHeads, 1, 1), label: label, group: group)
    }

    // MARK: - Configuration

    /// The kernels give each lane of a subgroup its own head dimensions, so they need full subgroups
    /// of `info.subgroupSize` lanes: required where the device can guarantee it (subgroup size
    /// control); otherwise SPIR-V 1.5 shaders see SubgroupSize == subgroupSize and drivers fill
    /// subgroups of workgroups that are a multiple of it.
    private func subgroupRequirement(workgroup: Int) -> SubgroupRequirement {
        var requirement = SubgroupRequirement.fullDeviceSubgroups(device.info)
        // Without a required size, full subgroups need the local size to be a multiple of the largest size.
        if requirement.requiredSize == nil, workgroup % max(1, device.info.maxSubgroupSize) != 0 {
            requirement.fullSubgroups = false
        }
        return requirement
    }

    /// The kernel variant for (headDim, group, decode), sized from the device limits.
    private func kernelConfig(headDim d: Int, group: Int, decode: Bool, lanes: Bool? = nil) throws -> KernelConfig {
        let lanes = decode && (lanes ?? (lanesDecode && texelCaches && d % 4 == 0))
        let key = "\(d)/\(group)/\(decode)/\(lanes)"
        lock.lock()
        if let cached = configs[key] { lock.unlock(); return cached }
        lock.unlock()
        guard device.info.supportsSubgroupArithmetic else {
            throw VulkanError.missingFeature(
                "attention: \(device.info.name) lacks subgroup arithmetic in compute shaders (subgroupAdd), which the "
                    + "attention kernels need; supported subgroup operations: \(device.info.subgroupOperationNames.joined(separator: ", "))")
        }
        let config = try lanes ? lanesDecodeConfig(headDim: d, group: group)
            : decode ? decodeConfig(headDim: d, group: group) : prefillConfig(headDim: d, group: group)
        guard config.sharedBytes <= device.info.maxSharedMemory else {
            throw VulkanError.invalidArgument(
                "attention: \(group) query heads per kv head with head dim \(d) need \(config.sharedBytes) bytes "
                    + "of shared memory in \(config.file), the device offers \(device.info.maxSharedMemory)")
        }
        guard config.workgroup <= device.info.maxWorkgroupInvocations else {
            throw VulkanError.invalidArgument(
                "attention: \(config.file) needs workgroups of \(config.workgroup) invocations, the device allows \(device.info.maxWorkgroupInvocations)")
        }
        lock.lock(); configs[key] = config; lock.unlock()
        return config
    }

    /// attention.comp: the decode kernel's lane ↔ column layout with `ROWS` query rows per subgroup,
    /// each subgroup an independent row block. Loads are `VEC` floats wide where the head row still
    /// covers the whole subgroup (fewer, wider loads; lanes never idle on GPUs with wide subgroups).
    private func prefillConfig(headDim d: Int, group: Int) throws -> KernelConfig {
        let info = device.info
        let subgroup = max(1, info.subgroupSize)
        let vec = [4, 2, 1].first { d % $0 == 0 && d / $0 >= subgroup } ?? 1
        let slots = (d / vec + subgroup - 1) / subgroup
        let chunk = Self.prefillChunk
        // Per row a lane holds GROUP·(2·slots·vec + CHUNK) floats (Q, accumulators, scores). GPUs
        // must keep that within their register file; CPU drivers spill to cache cheaply, and there
        // every extra row amortises the per-lane K/V load loops further.
        let budget = info.kind == .cpu ? Self.prefillFloatsPerLaneCPU : Self.prefillFloatsPerLane
        let rows = max(1, min(Self.prefillRows, budget / (group * (2 * slots * vec + chunk))))
        let subgroups = max(1, min(Self.decodeSubgroups, info.maxWorkgroupInvocations / subgroup))
        return KernelConfig(file: "attention.comp", defines: [
            "HEAD_DIM": "\(d)", "GROUP": "\(group)", "ROWS": "\(rows)", "SUBGROUP": "\(subgroup)", "NSUB": "\(subgroups)",
            "WG_SIZE": "\(subgroup * subgroups)", "VEC": "\(vec)", "CHUNK": "\(chunk)",
        ], rows: rows * subgroups, keysPerStep: chunk, workgroup: subgroup * subgroups, sharedBytes: 0)
    }

    /// attention_decode.comp: lanes of a subgroup own head dimensions, so the subgroup size is a
    /// compile-time constant (the device's, which SubgroupSize equals for these SPIR-V 1.5 shaders);
    /// `decodeSubgroups` subgroups per workgroup (fewer if their merge area would not fit): each split
    /// is a workgroup, so GPUs get their parallelism from kv heads × splits.
    private func decodeConfig(headDim d: Int, group: Int) throws -> KernelConfig {
        let info = device.info
        let subgroup = max(1, info.subgroupSize)
        var subgroups = max(1, min(Self.decodeSubgroups, info.maxWorkgroupInvocations / subgroup))
        func shared(_ n: Int) -> Int { 4 * n * group * (d + 2) }
        while subgroups > 1, shared(subgroups) > info.maxSharedMemory { subgroups /= 2 }
        return KernelConfig(file: "attention_decode.comp", defines: [
            "HEAD_DIM": "\(d)", "GROUP": "\(group)", "SUBGROUP": "\(subgroup)", "NSUB": "\(subgroups)",
            "WG_SIZE": "\(subgroup * subgroups)", "CHUNK": "\(Self.decodeChunk)",
        ], rows: 1, keysPerStep: Self.decodeChunk, workgroup: subgroup * subgroups, sharedBytes: shared(subgroups))
    }

    /// attention_decode_lanes.comp: one subgroup per workgroup, lanes own keys (see the shader).
    private func lanesDecodeConfig(headDim d: Int, group: Int) throws -> KernelConfig {
        let subgroup = max(1, device.info.subgroupSize)
        return KernelConfig(file: "attention_decode_lanes.comp", defines: [
            "HEAD_DIM": "\(d)", "GROUP": "\(group)", "SUBGROUP": "\(subgroup)",
        ], rows: 1, keysPerStep: subgroup, workgroup: subgroup, sharedBytes: 0)
    }

    private static func checkShape(heads: Int, kvHeads: Int, headDim d: Int, _ label: String) throws {
        guard heads >= 1, kvHeads >= 1 else {
            throw VulkanError.invalidArgument("\(label): heads (\(heads)) and kvHeads (\(kvHeads)) must be ≥ 1")
        }
        guard heads % kvHeads == 0 else {
            throw VulkanError.invalidArgument("\(label): heads (\(heads)) must be a multiple of kvHeads (\(kvHeads))")
        }
        guard supportsHeadDim(d) else {
            throw VulkanError.invalidArgument("\(label): head dim \(d) is not supported (multiples of 16 from 16 to 256, e.g. 64 or 128)")
        }
    }

    private static func require(_ buffer: DeviceBuffer, _ bytes: Int, _ what: String, _ shape: String) throws {
        guard buffer.byteCount >= bytes else {
            throw VulkanError.invalidArgument("\(what) buffer '\(buffer.label)' holds \(buffer.byteCount) bytes, needs \(bytes) (\(shape) floats)")
        }
    }

    private static func distinct(_ buffer: DeviceBuffer, from others: [DeviceBuffer], _ what: String) throws {
        if let same = others.first(where: { $0 === buffer }) {
            throw VulkanError.invalidArgument("\(what) buffer '\(buffer.label)' must not be the same buffer as an input ('\(same.label)')")
        }
    }
}
