import Foundation
import ModelFormats

/// Float32 reference backend: weights dequantized once at load, products on OpenBLAS.
public final class CPUBackend: InferenceBackend {
    public final class Tensor {
        let storage: UnsafeMutablePointer<Float>
        let count: Int
        init(_ count: Int) {
            self.count = count
            storage = .allocate(capacity: max(count, 1))
            storage.initialize(repeating: 0, count: max(count, 1))
        }
        deinit { storage.deallocate() }
    }

    /// A weight as float32 [rows, cols], copied out of the file at load: nothing reads the memory
    /// mapping at run time, so a model file truncated during a run cannot fault (SIGBUS) here.
    public final class Weight {
        let rows: Int
        let cols: Int
        let values: [Float]
        init(stacking parts: [Weight], label: String) {
            precondition(Set(parts.map(\.cols)).count == 1, "stacked weights differ in row length")
            rows = parts.map(\.rows).reduce(0, +)
            cols = parts[0].cols
            values = parts.flatMap(\.values)
        }

        init(_ raw: WeightTensor) {
            rows = raw.rows
            cols = raw.cols
            values = raw.type == .f32 ? Array(UnsafeBufferPointer(start: raw.data.baseAddress!.assumingMemoryBound(to: Float.self), count: raw.elementCount))
                : CPUKernels.dequantizeMatrix(raw.type, bytes: raw.data, rows: raw.rows, cols: raw.cols)
        }
    }

    public typealias Cache = KVCache<Tensor>

    public let name = "cpu"
    public private(set) var weightBytes = 0
    private let scratch = ProductScratch<CPUBackend>()
    public init() {}

    /// Analysis hook: called after every attention with the full probabilities [heads, rows, keys]
    /// (causal, masked entries 0) of the layer named by the last `setGroup("layer N")`.
    public var attentionObserver: ((_ layer: Int, _ probabilities: UnsafeBufferPointer<Float>, _ heads: Int, _ rows: Int, _ keys: Int) -> Void)?
    /// Calibration hook: called after every standard attention with log P [rows, heads, keys] (keys =
    /// startPosition + rows; entries past a row's last visible key undefined) of the current layer.
    public var logAttentionObserver: ((_ layer: Int, _ logProbabilities: UnsafeBufferPointer<Float>, _ heads: Int, _ rows: Int, _ keys: Int) -> Void)?
    /// Layers `logAttentionObserver` is called for (nil: every layer); the others compute no log P.
    public var logObservedLayers: Set<Int>?
    /// Layer of the current `setGroup`, -1 outside layers.
    private var currentLayer = -1

    public func makeTensor(_ count: Int, label: String) throws -> Tensor { Tensor(count) }
    public func makeTensor(_ values: [Float], label: String) throws -> Tensor {
        let t = Tensor(values.count)
        t.storage.update(from: values, count: values.count)
        return t
    }
    public var maxTensorBytes: Int { Int.max }
    public func loadWeight(_ weight: WeightTensor) throws -> Weight { counted(Weight(weight)) }
    public func loadStacked(_ weights: [WeightTensor], label: String) throws -> Weight {
        counted(Weight(stacking: weights.map(Weight.init), label: label))
    }
    /// The reference materialises every composed matrix (no slice is stored once on the CPU).
    public func loadComposed(_ weights: [ComposedWeight]) throws -> [Weight] {
        weights.map { counted(Weight($0.materialised())) }
    }
    private func counted(_ w: Weight) -> Weight {
        weightBytes += w.values.count * 4
        return w
    }

    public func makeCache(_ spec: CacheSpec, capacity: Int, label: String) throws -> Cache {
        let sizes = spec.streams.map { capacity.multipliedReportingOverflow(by: $0.rowSize * 4) }
        guard !sizes.contains(where: \.overflow) else { throw ModelLoadError("\(label) cache: \(capacity) positions overflow") }
        return Cache(spec, capacity: capacity) { Tensor(capacity * $1) }
    }
    public func setGroup(_ group: String) {
        currentLayer = group.hasPrefix("layer ") ? Int(group.dropFirst(6)) ?? -1 : -1
    }

    public func embed(_ table: Weight, tokens: [Int], into out: Tensor) throws {
        precondition(tokens.count * table.cols <= out.count)
        for (index, id) in tokens.enumerated() where !(0..<table.rows).contains(id) {
            throw CPUKernelError.tokenOutOfRange(id: id, index: index, vocabularySize: table.rows)
        }
        // Rows of the dequantized table: the same floats `CPUKernels.embedding` makes from the raw rows.
        table.values.withUnsafeBufferPointer { v in
            for (index, id) in tokens.enumerated() {
                (out.storage + index * table.cols).update(from: v.baseAddress! + id * table.cols, count: table.cols)
            }
        }
    }

    public func matmul(_ weight: Weight, _ x: Tensor, into y: Tensor, rows: Int, label: String) throws {
        precondition(rows * weight.cols <= x.count && rows * weight.rows <= y.count, "\(label): tensor too small")
        weight.values.withUnsafeBufferPointer { w in
            CPUKernels.matmul(x.storage, rows: rows, inDim: weight.cols, weight: w.baseAddress!, outDim: weight.rows, into: y.storage)
        }
    }

    public func shape(of weight: Weight) -> (rows: Int, cols: Int) { (weight.rows, weight.cols) }

    /// The reference composes the separate ops: every fused result on the GPU is checked against them.
    public func product(_ weight: Weight, _ x: Tensor, rows: Int, input: FusedInput<Weight>, output: FusedOutput<Tensor, Weight, Cache>,
                        label: String) throws {
        try unfusedProduct(weight, x, rows: rows, input: input, output: output, label: label, scratch: scratch)
    }

    public func rmsnorm(_ x: Tensor, weight: Weight, into y: Tensor, rows: Int, dim: Int, eps: Float) throws {
        weight.values.withUnsafeBufferPointer { w in
            CPUKernels.rmsnorm(x.storage, weight: w.baseAddress!, into: y.storage, rows: rows, dim: dim, eps: eps)
        }
    }

    public func ropeIntoCache(_ qkv: Tensor, rows: Int, heads: Int, kvHeads: Int, headDim: Int, startPosition: Int,
                              theta: Float, divisors: [Float]?, layout: RopeLayout, cache: Cache) throws {
        let (keys, kvSize) = try cache.stream(.keys, "ropeIntoCache")
        let (values, _) = try cache.stream(.values, "ropeIntoCache")
        let qSize = heads * headDim, rowSize = qSize + 2 * kvSize
        precondition(kvSize == kvHeads * headDim && startPosition + rows <= cache.capacity && rows * rowSize <= qkv.count)
        // Same kernels as rope + store: K and V rows are copied into the cache, then K is rotated there.
        let offset = startPosition * kvSize
        for r in 0..<rows {
            let row = qkv.storage + r * rowSize
            CPUKernels.rope(row, rows: 1, heads: heads, headDim: headDim, startPosition: startPosition + r, theta: theta,
                            divisors: divisors, layout: layout)
            (keys.storage + offset + r * kvSize).update(from: row + qSize, count: kvSize)
            (values.storage + offset + r * kvSize).update(from: row + qSize + kvSize, count: kvSize)
        }
        CPUKernels.rope(keys.storage + offset, rows: rows, heads: kvHeads, headDim: headDim, startPosition: startPosition,
                        theta: theta, divisors: divisors, layout: layout)
    }

    public func rotatePairs(_ x: Tensor, rows: Int, rowSize: Int, offset: Int, heads: Int, pairs: Int, groupSize: Int,
                            frequencies: Tensor, startPosition: Int) throws {
        precondition(rows * rowSize <= x.count && (heads / groupSize) * pairs <= frequencies.count)
        CPUKernels.rotatePairs(x.storage, rows: rows, rowSize: rowSize, offset: offset, heads: heads, pairs: pairs, groupSize: groupSize,
                               frequencies: frequencies.storage, startPosition: startPosition)
    }

    public func store(_ source: Tensor, offset: Int, into stream: CacheSpec.Stream, of cache: Cache, rows: Int, startPosition: Int) throws {
        let (target, rowSize) = try cache.stream(stream, "store")
        precondition(startPosition + rows <= cache.capacity && offset + rows * rowSize <= source.count)
        (target.storage + startPosition * rowSize).update(from: source.storage + offset, count: rows * rowSize)
    }

    public func splitColumns(_ x: Tensor, rows: Int, rowSize: Int, into parts: [(offset: Int, size: Int, tensor: Tensor)]) throws {
        for part in parts {
            precondition(part.offset + part.size <= rowSize && rows * part.size <= part.tensor.count)
            for r in 0..<rows {
                (part.tensor.storage + r * part.size).update(from: x.storage + r * rowSize + part.offset, count: part.size)
            }
        }
    }

    public func attention(_ op: AttentionOp<Tensor, Cache>) throws {
        try op.check("attention")
        let s = op.shape, total = op.context
        let (v, _) = try op.values.stream(.values, "attention values")
        precondition(total <= op.values.capacity && op.rows * s.queryRow <= op.out.count)
        switch op.scores {
        case let .queries(queries, keyCache):
            let (k, _) = try keyCache.stream(.keys, "attention keys")
            precondition(total <= keyCache.capacity && op.rows * s.queryRow <= queries.count)
            let emitted = op.emittedProbabilities
            // The observer needs the whole matrix; the same kernel writes it (results are identical either way).
            let observed: UnsafeMutablePointer<Float>? = attentionObserver == nil ? nil
                : emitted?.storage ?? .allocate(capacity: s.heads * op.rows * total)
            defer { if let observed, observed != emitted?.storage { observed.deallocate() } }
            var logs = op.emittedLogProbabilities.map { (pointer: $0.tensor.storage, stride: $0.stride) }
            if let logs { precondition(op.rows * s.heads * logs.stride <= op.emittedLogProbabilities!.tensor.count) }
            let observing = logAttentionObserver != nil && (logObservedLayers?.contains(currentLayer) ?? true)
            let observedLogs: UnsafeMutablePointer<Float>? = !observing || logs != nil || op.window != nil ? nil
                : .allocate(capacity: op.rows * s.heads * total)
            defer { observedLogs?.deallocate() }
            if let observedLogs { logs = (observedLogs, total) }
            CPUKernels.attention(q: queries.storage, k: k.storage, v: v.storage, out: op.out.storage,
                                 queryCount: op.rows, keyCount: total, heads: s.heads, kvHeads: s.kvHeads, headDim: s.headDim,
                                 queryStart: op.startPosition, scale: op.scale, window: op.window,
                                 probabilitiesOut: observed ?? emitted?.storage,
                                 logProbabilitiesOut: logs?.pointer, logStride: logs?.stride ?? 0)
            if observing, let logAttentionObserver, let logs, logs.stride == total {
                logAttentionObserver(currentLayer, UnsafeBufferPointer(start: logs.pointer, count: op.rows * s.heads * total), s.heads, op.rows, total)
            }
            if let observed, let attentionObserver {
                attentionObserver(currentLayer, UnsafeBufferPointer(start: observed, count: s.heads * op.rows * total), s.heads, op.rows, total)
            }
        case let .lisa(l):
            if case .probabilities = op.emit { throw ModelLoadError("attention: a LiSA layer cannot be a Shared Attention source") }
            let logs = op.emittedLogProbabilities
            precondition(op.rows * s.heads * l.stride <= l.previous.count && logs.map { op.rows * s.heads * $0.stride <= $0.tensor.count } ?? true)
            precondition(logs == nil || logs!.stride == l.stride, "LiSA input and output rows share one stride")
            let keys = l.rank > 0 ? try l.keys.stream(.lowRankKeys, "LiSA low-rank keys").storage.storage : nil
            let shape = CPUKernels.LiSAShape(heads: s.heads, kvHeads: s.kvHeads, headDim: s.headDim, rank: l.rank, ffnWidth: l.ffnWidth,
                                             rows: op.rows, startPosition: op.startPosition, stride: l.stride, lowRankScale: l.lowRankScale)
            CPUKernels.lisaAttention(previous: l.previous.storage, alignment: l.alignment.storage,
                                     queries: l.rank > 0 ? UnsafePointer(l.queries.storage) : nil, lowRankKeys: keys.map { UnsafePointer($0) },
                                     v: v.storage, out: op.out.storage, logOut: logs?.tensor.storage, shape: shape)
        case let .probabilities(p):
            guard case .nothing = op.emit else {
                throw ModelLoadError("attention: a layer applying given probabilities cannot emit them again (emit from the source)")
            }
            precondition(s.heads * total <= p.count)
            CPUKernels.applyProbabilities(p.storage, v: v.storage, out: op.out.storage, queryCount: 1,
                                          keyCount: total, heads: s.heads, kvHeads: s.kvHeads, headDim: s.headDim)
        }
    }

    public func copyRow(_ x: Tensor, row: Int, rowSize: Int, into out: Tensor) throws {
        out.storage.update(from: x.storage + row * rowSize, count: rowSize)
    }

    public func swiglu(gate: Tensor, gateOffset: Int, up: Tensor, upOffset: Int, into out: Tensor, count: Int) throws {
        CPUKernels.swiglu(gate: gate.storage + gateOffset, up: up.storage + upOffset, into: out.storage, count: count)
    }

    public func geglu(gate: Tensor, gateOffset: Int, up: Tensor, upOffset: Int, into out: Tensor, count: Int) throws {
        CPUKernels.geglu(gate: gate.storage + gateOffset, up: up.storage + upOffset, into: out.storage, count: count)
    }

    public func headNorm(_ x: Tensor, rows: Int, rowSize: Int, offset: Int, heads: Int, headDim: Int, weight: Weight, eps: Float) throws {
        precondition(offset + heads * headDim <= rowSize && rows * rowSize <= x.count && weight.values.count == headDim)
        weight.values.withUnsafeBufferPointer { w in
            for r in 0..<rows {
                let row = x.storage + r * rowSize + offset
                CPUKernels.rmsnorm(row, weight: w.baseAddress!, into: row, rows: heads, dim: headDim, eps: eps)
            }
        }
    }

    public func scale(_ x: Tensor, by factor: Float, count: Int) throws {
        precondition(count <= x.count)
        CPUKernels.scale(x.storage, by: factor, count: count)
    }

    public func add(_ a: Tensor, _ b: Tensor, into out: Tensor, count: Int) throws {
        CPUKernels.add(a.storage, b.storage, into: out.storage, count: count)
    }

    public func addBias(_ x: Tensor, bias: Weight, rows: Int) throws {
        precondition(rows * bias.values.count <= x.count, "addBias: tensor too small")
        bias.values.withUnsafeBufferPointer { b in
            for r in 0..<rows { CPUKernels.add(x.storage + r * b.count, b.baseAddress!, into: x.storage + r * b.count, count: b.count) }
        }
    }

    public func read(_ tensor: Tensor, offset: Int, count: Int) throws -> [Float] {
        precondition(offset + count <= tensor.count)
        return Array(UnsafeBufferPointer(start: tensor.storage + offset, count: count))
    }

    public func finish() throws {}
}
