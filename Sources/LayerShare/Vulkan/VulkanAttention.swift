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
/// - Prefill (`n > 1`, attention.comp): a workgroup takes a block of query rows (~16 query
///   vectors = rows × group) and walks the visible keys in tiles (two keys per invocation) with an
///   online softmax; only one score tile lives in shared memory. Row blocks spread over workgroups.
/// - Decode (`n == 1`, attention_decode.comp): the key range is split across workgroups
///   (flash-decoding), ≥ 256 keys per split and at most `maxSplits` splits; inside a workgroup each
///   subgroup runs its own online softmax over chunks of keys with Q and the accumulators in
///   registers, merged at the end. With more than one split, partials go to the caller's scratch
///   buffer and attention_merge.comp combines them with log-sum-exp.
///
/// Only records into the caller's `CommandBatch`; never submits.
public final class VulkanAttention {
    public let library: PipelineLibrary
    public var device: VulkanDevice { library.device }

    /// Fewest keys a decode split covers; more keys per split only once `maxSplits` is reached.
    public static let minSplitLength = 256
    /// Upper bound on decode splits (bounds the scratch buffer and the merge's loop).
    public static let maxSplits = 64
    /// Query vectors (rows × heads per kv head) a prefill workgroup aims for.
    static let prefillVectors = 16
    static let maxAccumulators = 32
    static let prefillKeysPerInvocation = 2
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

    public init(library: PipelineLibrary) {
        self.library = library
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
    public func attention(_ batch: CommandBatch, q: DeviceBuffer, k: DeviceBuffer, v: DeviceBuffer,
                          out: DeviceBuffer, scratch: DeviceBuffer, rows n: Int, startPosition: Int,
                          heads: Int, kvHeads: Int, headDim d: Int, scale: Float,
                          probabilities: DeviceBuffer? = nil, label: String, group: String = "") throws {
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

        let config = try kernelConfig(headDim: d, group: heads / kvHeads, decode: n == 1)
        let main = try library.pipeline(config.file, defines: config.defines, bindings: 6, pushConstantBytes: 28)
        let flags: UInt32 = (plan.merges ? 1 : 0) | (probabilities != nil ? 2 : 0)
        // Bindings a mode does not use point at the scratch buffer (or O) tagged as read, so they add
        // no false write hazards to the batch.
        let outBinding: BufferBinding = plan.merges ? .read(out, range: qBytes) : .write(out, range: qBytes)
        let scratchBinding: BufferBinding = plan.merges ? .write(scratch, range: partialBytes) : .read(scratch)
        let probBinding: BufferBinding = probabilities.map { .write($0, range: probBytes) } ?? .read(scratch)
        try batch.dispatch(main, [
            .read(q, range: qBytes), .read(k, range: cacheBytes), .read(v, range: cacheBytes),
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
        let pipeline = try library.pipeline("attention_apply.comp", defines: [
            "HEAD_DIM": "\(d)", "GROUP": "\(groupSize)", "SUBGROUP": "\(subgroup)", "NSUB": "\(subgroups)",
            "WG_SIZE": "\(subgroup * subgroups)",
        ], bindings: 3, pushConstantBytes: 8)
        try batch.dispatch(pipeline, [
            .read(probabilities, range: probBytes), .read(v, range: cacheBytes), .write(out, range: outBytes),
        ], push: [.uint(UInt32(t)), .uint(UInt32(kvHeads))],
        groups: (kvHeads, 1, 1), label: label, group: group)
    }

    // MARK: - Configuration

    /// The kernel variant for (headDim, group, decode), sized from the device limits.
    private func kernelConfig(headDim d: Int, group: Int, decode: Bool) throws -> KernelConfig {
        let key = "\(d)/\(group)/\(decode)"
        lock.lock()
        if let cached = configs[key] { lock.unlock(); return cached }
        lock.unlock()
        let config = try decode ? decodeConfig(headDim: d, group: group) : prefillConfig(headDim: d, group: group)
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

    /// attention.comp: `prefillKeysPerInvocation` keys per invocation in the score phase and whole
    /// output columns per invocation in the p·V phase, so the workgroup size divides headDim.
    private func prefillConfig(headDim d: Int, group: Int) throws -> KernelConfig {
        let info = device.info
        guard let workgroup = [64, 32, 16].first(where: { d % $0 == 0 && $0 <= info.maxWorkgroupInvocations }) else {
            throw VulkanError.invalidArgument("attention: no workgroup size fits head dim \(d) on this device")
        }
        let kpt = Self.prefillKeysPerInvocation
        let tile = workgroup * kpt
        func shared(_ vectors: Int) -> Int { 4 * (vectors * d + vectors * tile + 3 * vectors) }
        // Per invocation: M·KPT score registers and M·(d / workgroup) accumulators; ≤ 32 of each
        // keeps register pressure moderate on GPUs.
        let perVector = group * max(kpt, d / workgroup)
        var rows = max(1, min(Self.prefillVectors / group, Self.maxAccumulators / perVector))
        while rows > 1, shared(rows * group) > info.maxSharedMemory { rows /= 2 }
        return KernelConfig(file: "attention.comp", defines: [
            "HEAD_DIM": "\(d)", "GROUP": "\(group)", "ROWS": "\(rows)", "WG_SIZE": "\(workgroup)", "KPT": "\(kpt)",
        ], rows: rows, keysPerStep: tile, workgroup: workgroup, sharedBytes: shared(rows * group))
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
