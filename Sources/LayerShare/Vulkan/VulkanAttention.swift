import Foundation
import VulkanCompute

/// Fused causal grouped-query attention on Vulkan (Shaders/attention*.comp).
///
/// Layouts (float32): Q and O `[n, heads, headDim]` for positions `startPosition ..< startPosition + n`;
/// K and V caches `[capacity, kvHeads, headDim]`, positions `0 ..< startPosition + n` valid. Query head
/// `h` reads kv head `h / (heads / kvHeads)`; row `i` sees keys `0 ... startPosition + i`.
///
/// Work split:
/// - A workgroup owns one kv head and the `heads / kvHeads` query heads sharing it, for a block of
///   query rows, and streams K/V through shared memory in tiles with an online softmax. K/V rows
///   are therefore read once per (kv head, row block), not once per query head.
/// - Prefill (`n > 1`): row blocks of ~16 query vectors (rows × group) spread over workgroups.
/// - Decode (`n == 1`): the key range is split across workgroups (flash-decoding), ≥ 256 keys per
///   split and at most `maxSplits` splits; partials go to the caller's scratch buffer and
///   `attention_merge.comp` combines them with log-sum-exp.
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
    /// Columns per workgroup of `attention_apply.comp`.
    static let applyColumns = 16
    static let applyWorkgroup = 128
    static let mergeWorkgroup = 64

    /// How one call is distributed (exposed for tests and profiles).
    public struct Plan: Equatable, CustomStringConvertible {
        public let rowsPerWorkgroup: Int
        public let tile: Int
        public let workgroupSize: Int
        public let splits: Int
        public let splitLength: Int
        public let workgroups: (Int, Int, Int)
        public let sharedBytes: Int
        public let merges: Bool

        public static func == (a: Plan, b: Plan) -> Bool {
            a.rowsPerWorkgroup == b.rowsPerWorkgroup && a.tile == b.tile && a.workgroupSize == b.workgroupSize
                && a.splits == b.splits && a.splitLength == b.splitLength && a.workgroups == b.workgroups
                && a.sharedBytes == b.sharedBytes && a.merges == b.merges
        }

        public var description: String {
            "rows/wg \(rowsPerWorkgroup), tile \(tile), wg \(workgroupSize), splits \(splits)×\(splitLength), "
                + "grid \(workgroups), shared \(sharedBytes) B\(merges ? ", merge" : "")"
        }
    }

    private struct MainConfig: Hashable {
        let headDim: Int, group: Int, rows: Int, workgroup: Int
        var vectors: Int { rows * group }
        var tile: Int { workgroup }
        var sharedBytes: Int { Self.sharedBytes(headDim: headDim, vectors: vectors, tile: tile) }
        static func sharedBytes(headDim d: Int, vectors m: Int, tile: Int) -> Int {
            4 * (m * d + m * tile + 3 * m)
        }
    }

    private let lock = NSLock()
    private var configs: [String: MainConfig] = [:]

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
                     emitsProbabilities: Bool = false) throws -> Plan {
        try Self.checkShape(heads: heads, kvHeads: kvHeads, headDim: headDim)
        guard n >= 1 else { throw VulkanError.invalidArgument("attention: rows n must be ≥ 1, got \(n)") }
        guard startPosition >= 0 else { throw VulkanError.invalidArgument("attention: startPosition must be ≥ 0, got \(startPosition)") }
        let config = try mainConfig(headDim: headDim, group: heads / kvHeads, decode: n == 1)
        let total = startPosition + n
        let (length, splits) = n == 1 ? Self.splitLayout(context: total) : (total, 1)
        return Plan(rowsPerWorkgroup: config.rows, tile: config.tile, workgroupSize: config.workgroup,
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
                                 headDim: d, emitsProbabilities: probabilities != nil)
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

        let groupSize = heads / kvHeads
        let config = try mainConfig(headDim: d, group: groupSize, decode: n == 1)
        let main = try library.pipeline("attention.comp", defines: [
            "HEAD_DIM": "\(d)", "GROUP": "\(groupSize)", "ROWS": "\(config.rows)", "WG_SIZE": "\(config.workgroup)",
        ], bindings: 6, pushConstantBytes: 28)
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
        try Self.checkShape(heads: heads, kvHeads: kvHeads, headDim: d)
        guard t >= 1 else { throw VulkanError.invalidArgument("\(label): context T must be ≥ 1, got \(t)") }
        let groupSize = heads / kvHeads
        let probBytes = heads * t * 4
        let cacheBytes = t * kvHeads * d * 4
        let outBytes = heads * d * 4
        try Self.require(probabilities, probBytes, "\(label): probabilities", "\(heads) heads × \(t) keys")
        try Self.require(v, cacheBytes, "\(label): V cache", "positions 0..<\(t) × \(kvHeads) kv heads × \(d)")
        try Self.require(out, outBytes, "\(label): output", "\(heads) heads × \(d)")
        try Self.distinct(out, from: [probabilities, v], "\(label): output")
        let shared = groupSize * Self.applyWorkgroup * 4
        guard shared <= device.info.maxSharedMemory, Self.applyWorkgroup <= device.info.maxWorkgroupInvocations else {
            throw VulkanError.invalidArgument(
                "\(label): \(groupSize) query heads per kv head need \(shared) bytes of shared memory in attention_apply, "
                    + "the device offers \(device.info.maxSharedMemory)")
        }
        let pipeline = try library.pipeline("attention_apply.comp", defines: [
            "HEAD_DIM": "\(d)", "GROUP": "\(groupSize)", "DCHUNK": "\(Self.applyColumns)",
            "WG_SIZE": "\(Self.applyWorkgroup)",
        ], bindings: 3, pushConstantBytes: 8)
        try batch.dispatch(pipeline, [
            .read(probabilities, range: probBytes), .read(v, range: cacheBytes), .write(out, range: outBytes),
        ], push: [.uint(UInt32(t)), .uint(UInt32(kvHeads))],
        groups: (kvHeads, d / Self.applyColumns, 1), label: label, group: group)
    }

    // MARK: - Configuration

    /// Rows per workgroup and workgroup size (= keys per tile) for (headDim, group), from the device limits.
    private func mainConfig(headDim d: Int, group: Int, decode: Bool) throws -> MainConfig {
        let key = "\(d)/\(group)/\(decode)"
        lock.lock()
        if let cached = configs[key] { lock.unlock(); return cached }
        lock.unlock()
        let info = device.info
        // One key per invocation in the score phase, whole output columns per invocation in the
        // p·V phase, so the workgroup size divides headDim. 64 keys per tile keeps the three
        // barriers per tile cheap relative to the work between them.
        guard let workgroup = [64, 32, 16].first(where: { d % $0 == 0 && $0 <= info.maxWorkgroupInvocations }) else {
            throw VulkanError.invalidArgument("attention: no workgroup size fits head dim \(d) on this device")
        }
        let columns = d / workgroup
        // Per invocation: M score registers and M·columns accumulators; ≤ 32 of each keeps
        // register pressure moderate on GPUs. Decode has one row: M = group.
        var rows = decode ? 1 : max(1, min(Self.prefillVectors / group, Self.maxAccumulators / (group * columns)))
        while rows > 1, MainConfig.sharedBytes(headDim: d, vectors: rows * group, tile: workgroup) > info.maxSharedMemory {
            rows /= 2
        }
        let config = MainConfig(headDim: d, group: group, rows: rows, workgroup: workgroup)
        guard config.sharedBytes <= info.maxSharedMemory else {
            throw VulkanError.invalidArgument(
                "attention: \(group) query heads per kv head with head dim \(d) need \(config.sharedBytes) bytes "
                    + "of shared memory, the device offers \(info.maxSharedMemory)")
        }
        lock.lock(); configs[key] = config; lock.unlock()
        return config
    }

    private static func checkShape(heads: Int, kvHeads: Int, headDim d: Int) throws {
        guard heads >= 1, kvHeads >= 1 else {
            throw VulkanError.invalidArgument("attention: heads (\(heads)) and kvHeads (\(kvHeads)) must be ≥ 1")
        }
        guard heads % kvHeads == 0 else {
            throw VulkanError.invalidArgument("attention: heads (\(heads)) must be a multiple of kvHeads (\(kvHeads))")
        }
        guard supportsHeadDim(d) else {
            throw VulkanError.invalidArgument("attention: head dim \(d) is not supported (multiples of 16 from 16 to 256, e.g. 64 or 128)")
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
