import Foundation
import ModelFormats
import VulkanCompute

/// Runs the transformer's ops as Vulkan compute dispatches. Ops are recorded into one command batch
/// and submitted together when a result is read or `finish()` is called; barriers are placed only
/// where a dispatch reads what an earlier one wrote (CommandBatch tracks that).
public final class VulkanBackend: InferenceBackend {
    public final class Tensor {
        public let buffer: DeviceBuffer
        public let count: Int
        init(buffer: DeviceBuffer, count: Int) { self.buffer = buffer; self.count = count }
    }

    public typealias Cache = KVCache<DeviceBuffer>
    public typealias Weight = VulkanMatrix

    public let device: VulkanDevice
    public let library: PipelineLibrary
    public let kernels: VulkanKernels
    let attentionKernels: VulkanAttention
    let batch: CommandBatch
    private var recording = false
    var group = ""
    var tokenBuffer: DeviceBuffer?
    private var attentionScratch: DeviceBuffer?
    /// Host-visible buffer results are copied into at the end of a batch, reused across steps, so reading
    /// logits on a device without unified memory needs neither a new staging buffer nor a second submit.
    private var readback: DeviceBuffer?
    /// Read through `readback` even on unified memory (the path discrete GPUs take); from
    /// `KernelTuning.stagedReads`, set by tests.
    public var stagedReads: Bool
    /// Bytes of weights uploaded.
    public internal(set) var weightBytes = 0
    /// GPU timings of every batch since the last `takeTimings()` (profiling only).
    private var collectedTimings: [[DispatchTiming]] = []
    public let profiling: Bool
    let scratch = ProductScratch<VulkanBackend>()
    /// Set by a decode product that added into `x` and prepared the next norm's input (x·weight into
    /// `normedInput`, Σx² partials into `normPartials`); valid only for the op right after it (every
    /// op's ensureRecording clears it), which uses it when it reads rmsnorm(x)·weight.
    private var preparedNorm: (x: Tensor, weight: VulkanMatrix, count: Int)?
    private var normedInput: DeviceBuffer?
    private var normPartials: DeviceBuffer?

    public var name: String { "vulkan (\(device.info.name))" }

    /// `tuning` defaults to `KernelTuning.defaults(for:)` of the device; the kernels, the attention
    /// kernels and the read path all take their choices from it.
    public init(device: VulkanDevice, profiling: Bool = false, compiler: ShaderCompiler? = nil, tuning: KernelTuning? = nil) throws {
        self.device = device
        let compiler = try compiler ?? ShaderCompiler(sourceDirectory: ShaderDirectory.locate())
        let tuning = tuning ?? KernelTuning.defaults(for: device.info)
        library = PipelineLibrary(device: device, compiler: compiler)
        kernels = try VulkanKernels(library: library, tuning: tuning)
        attentionKernels = VulkanAttention(library: library, tuning: tuning)
        self.profiling = profiling
        stagedReads = tuning.stagedReads
        batch = try CommandBatch(device: device, maxTimestamps: profiling ? 16384 : 0)
    }

    func ensureRecording() throws {
        preparedNorm = nil
        if !recording {
            try batch.begin()
            recording = true
        }
    }

    public func makeTensor(_ count: Int, label: String) throws -> Tensor {
        Tensor(buffer: try DeviceBuffer(device: device, byteCount: max(count, 1) * 4, label: label), count: count)
    }

    public func makeTensor(_ values: [Float], label: String) throws -> Tensor {
        let t = try makeTensor(values.count, label: label)
        try t.buffer.upload(values)
        return t
    }

    public var maxTensorBytes: Int {
        let info = device.info
        return min(info.maxStorageBufferRange, info.maxMemoryAllocationSize > 0 ? info.maxMemoryAllocationSize : Int.max)
    }

    public func rotatePairs(_ x: Tensor, rows: Int, rowSize: Int, offset: Int, heads: Int, pairs: Int, groupSize: Int,
                            frequencies: Tensor, startPosition: Int) throws {
        guard rows * rowSize <= x.count, heads / max(groupSize, 1) * pairs <= frequencies.count else {
            throw ModelLoadError("rotatePairs: \(rows) rows of \(rowSize) or \(heads / max(groupSize, 1)) × \(pairs) frequencies exceed the tensors")
        }
        try ensureRecording()
        batch.setCost(bytes: Double(2 * rows * heads * 2 * pairs * 4), flops: Double(6 * rows * heads * pairs))
        try kernels.rotatePairs(batch, x: x.buffer, rows: rows, rowSize: rowSize, offset: offset, heads: heads, pairs: pairs,
                                groupSize: groupSize, frequencies: frequencies.buffer, startPosition: startPosition, group: group)
    }

    public func loadWeight(_ weight: WeightTensor) throws -> VulkanMatrix {
        // Vectors (norm weights) are read as float32 by the norm kernels whatever the file stores.
        if weight.shape.count == 1, weight.type != .f32 {
            let values = Dequantize.row(weight.type, weight.data.baseAddress!, count: weight.elementCount)
            let m = try VulkanMatrix(device: device, values: values, rows: 1, cols: values.count, label: weight.name)
            weightBytes += m.buffer.byteCount
            return m
        }
        let m = try uploadMatrix(weight)
        weightBytes += m.rowParts.isEmpty ? m.buffer.byteCount : m.rowParts.map(\.matrix.buffer.byteCount).reduce(0, +)
        return m
    }

    /// Parts of one type are stacked as stored, as one matrix. Parts of different types (Q4_K_M files
    /// mix Q5_0 and Q8_0 inside one layer's Q/K/V) become row parts, one matrix per run of parts of one
    /// type, each read as stored: the layer's product is one dispatch per run (the kernels take one
    /// type each), with the fused outputs done as separate ops (`rowPartsProduct`).
    public func loadStacked(_ weights: [WeightTensor], label: String) throws -> VulkanMatrix {
        guard let first = weights.first, weights.allSatisfy({ $0.cols == first.cols }) else {
            throw ModelLoadError("\(label): stacked weights must share their row length (\(weights.map { "\($0.name) \($0.type) \($0.shape)" }))")
        }
        var runs: [[WeightTensor]] = []
        for w in weights {
            if let last = runs.last?.last, last.type == w.type { runs[runs.count - 1].append(w) } else { runs.append([w]) }
        }
        let matrices = try runs.map { run -> VulkanMatrix in
            var bytes = [UInt8]()
            bytes.reserveCapacity(run.map(\.data.count).reduce(0, +))
            for w in run { bytes.append(contentsOf: w.data) }
            let runLabel = runs.count == 1 ? label : "\(label) (\(run.map(\.name).joined(separator: ", ")))"
            let m = try bytes.withUnsafeBytes {
                try VulkanMatrix(device: device, type: run[0].type, rows: run.map(\.rows).reduce(0, +), cols: first.cols, bytes: $0,
                                 tileRows: kernels.tuning.weightTileRows, label: runLabel)
            }
            weightBytes += m.buffer.byteCount
            return m
        }
        return matrices.count == 1 ? matrices[0] : try VulkanMatrix(rows: matrices, label: label)
    }

    public func makeCache(_ spec: CacheSpec, capacity: Int, label: String) throws -> Cache {
        try Cache(spec, capacity: capacity) { stream, row in
            let (bytes, overflow) = capacity.multipliedReportingOverflow(by: row * 4)
            guard !overflow else { throw ModelLoadError("\(label) \(stream.rawValue) cache: \(capacity) positions × \(row) floats overflow") }
            return try DeviceBuffer(device: device, byteCount: bytes, label: "\(label) \(stream.rawValue) cache")
        }
    }

    public func setGroup(_ group: String) { self.group = group }

    /// Token ids into `tokenBuffer`, inside the command stream: no staging buffer or extra submit per step.
    func uploadTokens(_ ids: [UInt32]) throws {
        if tokenBuffer == nil || tokenBuffer!.byteCount < ids.count * 4 {
            tokenBuffer = try DeviceBuffer(device: device, byteCount: max(ids.count, 64) * 4, label: "token ids")
        }
        try ensureRecording()
        for start in stride(from: 0, to: ids.count, by: 16_384) {
            let chunk = ids[start..<min(start + 16_384, ids.count)]
            try chunk.withUnsafeBytes { try batch.update(tokenBuffer!, offset: start * 4, bytes: $0, label: "token_ids", group: group) }
        }
    }

    public func embed(_ table: VulkanMatrix, tokens: [Int], into out: Tensor) throws {
        if !table.rowParts.isEmpty { return try rowPartsEmbed(table, tokens: tokens, into: out) }
        try uploadTokens(tokens.map { UInt32($0) })
        let rowBytes = Double(table.byteCount / max(table.rows, 1))
        batch.setCost(bytes: Double(tokens.count) * (rowBytes + Double(table.cols * 4)), flops: Double(tokens.count * table.cols))
        try kernels.embedding(batch, table: table, tokens: tokenBuffer!, out: out.buffer, rows: tokens.count,
                              label: "embedding \(table.type)", group: group)
    }

    public func matmul(_ weight: VulkanMatrix, _ x: Tensor, into y: Tensor, rows: Int, label: String) throws {
        if !weight.rowParts.isEmpty {
            return try rowPartsProduct(weight, x, rows: rows, input: .plain, output: .store(y), label: label)
        }
        if !weight.columnParts.isEmpty {
            return try columnPartsProduct(weight, x, rows: rows, input: .plain, output: .store(y), label: label)
        }
        try ensureRecording()
        let shape = rows == 1 ? "matvec" : "matmul"
        batch.setCost(bytes: Double(weight.byteCount + rows * (weight.cols + weight.rows) * 4),
                      flops: 2 * Double(rows) * Double(weight.rows) * Double(weight.cols))
        try kernels.matmul(batch, weight: weight, x: x.buffer, y: y.buffer, rows: rows,
                           label: "\(shape) \(weight.type) \(weight.cols)→\(weight.rows) (\(label))", group: group)
    }

    public func shape(of weight: VulkanMatrix) -> (rows: Int, cols: Int) { (weight.rows, weight.cols) }

    /// One matmul_lanes.comp dispatch where the kernels can fuse this case (quantized weights on
    /// CPU-type devices), else the separate ops.
    public func product(_ weight: VulkanMatrix, _ x: Tensor, rows: Int, input: FusedInput<VulkanMatrix>,
                        output: FusedOutput<Tensor, VulkanMatrix, Cache>, label: String) throws {
        if !weight.rowParts.isEmpty {
            try rowPartsProduct(weight, x, rows: rows, input: input, output: output, label: label)
        } else if !weight.columnParts.isEmpty {
            try columnPartsProduct(weight, x, rows: rows, input: input, output: output, label: label)
        } else {
            try product(weight, x, xColumns: nil, rows: rows, input: input, output: output, label: label)
        }
    }

    /// `product` reading, with `xColumns`, columns offset ..< offset + weight.cols of x's rows,
    /// `stride` floats apart (a column part of a composed weight), else x's packed rows.
    func product(_ weight: VulkanMatrix, _ x: Tensor, xColumns: (offset: Int, stride: Int)?, rows: Int, input: FusedInput<VulkanMatrix>,
                 output: FusedOutput<Tensor, VulkanMatrix, Cache>, label: String) throws {
        let prepared = preparedNorm
        var prepares: (weight: VulkanMatrix, count: Int)?
        let kernelOutput = try output.map(tensor: { $0.buffer }, nextNorm: { next -> VulkanKernels.NextNorm? in
            guard rows == 1, let count = kernels.nextNormPartials(weight: weight) else { return nil }
            prepares = (next, count)
            return .init(weight: next.buffer, normed: try preparedBuffer(&normedInput, floats: weight.rows, label: "normed input"),
                         partials: try preparedBuffer(&normPartials, floats: (count + 3) / 4 * 4, label: "norm partial sums"))
        }, rope: { r in try r.with(cache: cacheBuffers(r, rows: rows, label: label)) })
        guard kernels.canFuse(weight: weight, rows: rows, output: kernelOutput) else {
            if let xColumns {
                try separateColumnPartProduct(weight, x, xColumns: xColumns, rows: rows, output: output, label: label)
            } else {
                try unfusedProduct(weight, x, rows: rows, input: input, output: output, label: label, scratch: scratch)
            }
            return
        }
        var kernelInput = VulkanKernels.ProductInput.plain
        var source = x.buffer
        if case let .rmsNorm(w, eps) = input {
            if let prepared, prepared.x === x, prepared.weight === w, rows == 1, let normedInput, let normPartials {
                kernelInput = .rmsNorm(.prepared(partials: normPartials, count: prepared.count), eps: eps)
                source = normedInput
            } else {
                kernelInput = .rmsNorm(.weight(w.buffer), eps: eps)
            }
        }
        try ensureRecording()
        var name = label
        if profiling {
            batch.setCost(bytes: Double(weight.byteCount + rows * (weight.cols + weight.rows) * 4),
                          flops: 2 * Double(rows) * Double(weight.rows) * Double(weight.cols))
            // Profile label: the product and what is fused into it, e.g. "(ffn_gate_up + norm + swiglu)".
            let fused = [kernelInput.isPlain ? nil : "norm", output.fusedOpName].compactMap { $0 }.map { " + \($0)" }.joined()
            name = "\(rows == 1 ? "matvec" : "matmul") \(weight.type) \(weight.cols)→\(weight.rows) (\(label)\(fused))"
        }
        try kernels.product(batch, weight: weight, x: source, xOffset: xColumns?.offset ?? 0, rows: rows, xStride: xColumns?.stride,
                            input: kernelInput, output: kernelOutput, label: name, group: group)
        preparedNorm = prepares.map { (output.destination, $0.weight, $0.count) }
    }

    /// The K and V buffers of a RoPE output's cache, checked to hold its rows.
    private func cacheBuffers(_ r: RopeIntoCache<Cache>, rows: Int, label: String) throws -> VulkanKernels.CacheBuffers {
        let (keys, kvRow) = try r.cache.stream(.keys, label)
        let (values, _) = try r.cache.stream(.values, label)
        guard r.startPosition + rows <= r.cache.capacity, r.kvHeads * r.headDim == kvRow else {
            throw ModelLoadError("\(label): rows \(r.startPosition)..<\(r.startPosition + rows) × \(r.kvHeads * r.headDim) do not fit the cache")
        }
        return .init(keys: keys, values: values)
    }

    /// A buffer of at least `floats` floats in `slot`, made (or replaced by a larger one) on demand;
    /// a replaced buffer stays alive until the batch that uses it completes (CommandBatch retains it).
    private func preparedBuffer(_ slot: inout DeviceBuffer?, floats: Int, label: String) throws -> DeviceBuffer {
        if let b = slot, b.byteCount >= floats * 4 { return b }
        let b = try DeviceBuffer(device: device, byteCount: max(floats, 4) * 4, label: label)
        slot = b
        return b
    }

    public func rmsnorm(_ x: Tensor, weight: VulkanMatrix, into y: Tensor, rows: Int, dim: Int, eps: Float) throws {
        try ensureRecording()
        batch.setCost(bytes: Double((2 * rows + 1) * dim * 4), flops: Double(4 * rows * dim))
        try kernels.rmsnorm(batch, x: x.buffer, weight: weight.buffer, y: y.buffer, rows: rows, dim: dim, eps: eps, label: "rmsnorm", group: group)
    }

    public func ropeIntoCache(_ qkv: Tensor, rows: Int, heads: Int, kvHeads: Int, headDim: Int, startPosition: Int,
                              theta: Float, divisors: [Float]?, layout: RopeLayout, cache: Cache) throws {
        let (keys, kvRow) = try cache.stream(.keys, "ropeIntoCache")
        let (values, _) = try cache.stream(.values, "ropeIntoCache")
        guard startPosition + rows <= cache.capacity, kvHeads * headDim == kvRow else {
            throw ModelLoadError("ropeIntoCache: rows \(startPosition)..<\(startPosition + rows) × \(kvHeads * headDim) do not fit the cache")
        }
        try ensureRecording()
        let rowSize = (heads + 2 * kvHeads) * headDim
        batch.setCost(bytes: Double(rows * (rowSize + (heads + 2 * kvHeads) * headDim) * 4), flops: Double(3 * rows * (heads + kvHeads) * headDim))
        try kernels.ropeIntoCache(batch, x: qkv.buffer, rows: rows, heads: heads, kvHeads: kvHeads, headDim: headDim,
                                  startPosition: startPosition, theta: theta, divisors: divisors, layout: layout,
                                  keyCache: keys, valueCache: values,
                                  label: "rope_kv_store", group: group)
    }

    public func store(_ source: Tensor, offset: Int, into stream: CacheSpec.Stream, of cache: Cache, rows: Int, startPosition: Int) throws {
        let (target, rowSize) = try cache.stream(stream, "store")
        guard startPosition >= 0, startPosition + rows <= cache.capacity else {
            throw ModelLoadError("store: rows \(startPosition)..<\(startPosition + rows) do not fit the cache of \(cache.capacity) positions")
        }
        try ensureRecording()
        let bytes = rows * rowSize * 4
        batch.setCost(bytes: Double(2 * bytes), flops: 0)
        try batch.copy(from: source.buffer, srcOffset: offset * 4, to: target, dstOffset: startPosition * rowSize * 4, bytes: bytes,
                       label: "kv_store", group: group)
    }

    public func splitColumns(_ x: Tensor, rows: Int, rowSize: Int, into parts: [(offset: Int, size: Int, tensor: Tensor)]) throws {
        try ensureRecording()
        for part in parts {
            let regions = (0..<rows).map { r in (srcOffset: (r * rowSize + part.offset) * 4, dstOffset: r * part.size * 4, bytes: part.size * 4) }
            batch.setCost(bytes: Double(2 * rows * part.size * 4), flops: 0)
            try batch.copy(from: x.buffer, to: part.tensor.buffer, regions: regions, label: "split_columns", group: group)
        }
    }

    private func scratch(heads: Int, headDim: Int, context: Int) throws -> DeviceBuffer {
        let need = VulkanAttention.scratchBytes(heads: heads, headDim: headDim, maxContext: context)
        if attentionScratch == nil || attentionScratch!.byteCount < need {
            if recording { try flush() }
            attentionScratch = try DeviceBuffer(device: device, byteCount: need, label: "attention scratch")
        }
        return attentionScratch!
    }

    public func attention(_ op: AttentionOp<Tensor, Cache>) throws {
        try op.check("attention")
        let s = op.shape, rows = op.rows, start = op.startPosition
        let (v, _) = try op.values.stream(.values, "attention values")
        switch op.scores {
        case let .queries(queries, keyCache):
            let (k, _) = try keyCache.stream(.keys, "attention keys")
            let scratch = try scratch(heads: s.heads, headDim: s.headDim, context: keyCache.capacity)
            try ensureRecording()
            let context = Double(op.context)
            // Causal: query row i sees startPosition+i+1 keys; K and V rows are read once per KV group.
            let visiblePairs = Double(rows) * Double(start) + Double(rows * (rows + 1) / 2)
            batch.setCost(bytes: (2 * context * Double(s.kvHeads * s.headDim) + 2 * Double(rows * s.queryRow)) * 4,
                          flops: 4 * visiblePairs * Double(s.queryRow))
            try attentionKernels.attention(batch, q: queries.buffer, k: k, v: v, out: op.out.buffer, scratch: scratch,
                                           rows: rows, startPosition: start, heads: s.heads, kvHeads: s.kvHeads, headDim: s.headDim,
                                           scale: op.scale ?? 1 / Float(s.headDim).squareRoot(), probabilities: op.emittedProbabilities?.buffer, window: op.window,
                                           label: rows == 1 ? "attention decode" : "attention prefill", group: group)
            if let logs = op.emittedLogProbabilities {
                try emitLogProbabilities(op, queries: queries, keys: k, into: logs)
            }
        case let .lisa(l):
            try lisaAttention(op, l, values: v)
        case let .probabilities(p):
            guard case .nothing = op.emit else {
                throw ModelLoadError("attention: a layer applying given probabilities cannot emit them again (emit from the source)")
            }
            try ensureRecording()
            let context = op.context
            batch.setCost(bytes: Double(s.heads * context + context * s.kvHeads * s.headDim + s.queryRow) * 4,
                          flops: 2 * Double(s.heads * context * s.headDim))
            try attentionKernels.applyProbabilities(batch, probabilities: p.buffer, v: v, out: op.out.buffer,
                                                    context: context, heads: s.heads, kvHeads: s.kvHeads, headDim: s.headDim,
                                                    label: "attention apply", group: group)
        }
    }

    public func copyRow(_ x: Tensor, row: Int, rowSize: Int, into out: Tensor) throws {
        try ensureRecording()
        try batch.copy(from: x.buffer, srcOffset: row * rowSize * 4, to: out.buffer, bytes: rowSize * 4, label: "copy_row", group: group)
    }

    public func swiglu(gate: Tensor, gateOffset: Int, up: Tensor, upOffset: Int, into out: Tensor, count: Int) throws {
        try ensureRecording()
        batch.setCost(bytes: Double(3 * count * 4), flops: Double(6 * count))
        try kernels.swiglu(batch, gate: gate.buffer, gateOffset: gateOffset, up: up.buffer, upOffset: upOffset, out: out.buffer,
                           count: count, label: "swiglu", group: group)
    }

    public func geglu(gate: Tensor, gateOffset: Int, up: Tensor, upOffset: Int, into out: Tensor, count: Int) throws {
        try ensureRecording()
        batch.setCost(bytes: Double(3 * count * 4), flops: Double(12 * count))
        try kernels.geglu(batch, gate: gate.buffer, gateOffset: gateOffset, up: up.buffer, upOffset: upOffset, out: out.buffer,
                          count: count, label: "geglu", group: group)
    }

    public func headNorm(_ x: Tensor, rows: Int, rowSize: Int, offset: Int, heads: Int, headDim: Int, weight: VulkanMatrix, eps: Float) throws {
        try ensureRecording()
        batch.setCost(bytes: Double(2 * rows * heads * headDim * 4), flops: Double(3 * rows * heads * headDim))
        try kernels.headRmsnorm(batch, x: x.buffer, offset: offset, weight: weight.buffer, rows: rows, rowStride: rowSize,
                                heads: heads, headDim: headDim, eps: eps, group: group)
    }

    public func scale(_ x: Tensor, by factor: Float, count: Int) throws {
        try ensureRecording()
        batch.setCost(bytes: Double(2 * count * 4), flops: Double(count))
        try kernels.scale(batch, x: x.buffer, factor: factor, out: x.buffer, count: count, label: "scale", group: group)
    }

    public func add(_ a: Tensor, _ b: Tensor, into out: Tensor, count: Int) throws {
        try ensureRecording()
        batch.setCost(bytes: Double(3 * count * 4), flops: Double(count))
        try kernels.add(batch, a: a.buffer, b: b.buffer, out: out.buffer, count: count, label: "add", group: group)
    }

    public func addBias(_ x: Tensor, bias: VulkanMatrix, rows: Int) throws {
        try ensureRecording()
        let count = rows * bias.cols
        batch.setCost(bytes: Double((2 * count + bias.cols) * 4), flops: Double(count))
        try kernels.addRows(batch, x: x.buffer, rows: rows, bias: bias.buffer, rowSize: bias.cols, label: "bias", group: group)
    }

    /// Submits what was recorded and waits.
    private func flush() throws {
        guard recording else { return }
        recording = false
        try batch.run()
        if profiling { collectedTimings.append(batch.timings) }
    }

    public func read(_ tensor: Tensor, offset: Int, count: Int) throws -> [Float] {
        guard stagedReads, count > 0 else {
            try flush()
            return try tensor.buffer.download(Float.self, count: count, from: offset * 4)
        }
        if readback == nil || readback!.byteCount < count * 4 {
            try flush()
            readback = try DeviceBuffer(device: device, byteCount: count * 4, label: "readback", kind: .staging)
        }
        try ensureRecording()
        try batch.copy(from: tensor.buffer, srcOffset: offset * 4, to: readback!, bytes: count * 4, label: "readback", group: group)
        try flush()
        let mapped = readback!.mapped!.assumingMemoryBound(to: Float.self)
        return Array(UnsafeBufferPointer(start: mapped, count: count))
    }

    public func finish() throws { try flush() }

    /// GPU timings of the batches run since the last call, one array per batch.
    public func takeTimings() -> [[DispatchTiming]] {
        defer { collectedTimings.removeAll() }
        return collectedTimings
    }
}
