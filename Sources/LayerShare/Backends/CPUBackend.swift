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

    /// A weight as float32 [rows, cols], plus the raw tensor for embedding lookups.
    public final class Weight {
        let raw: WeightTensor
        let values: [Float]
        var rows: Int { raw.rows }
        var cols: Int { raw.cols }
        init(stacking parts: [Weight], label: String) {
            precondition(Set(parts.map(\.cols)).count == 1, "stacked weights differ in row length")
            let first = parts[0].raw
            let rows = parts.map(\.rows).reduce(0, +)
            // The raw tensor describes the stack's shape; its bytes are the first part's (only embedding reads them).
            raw = WeightTensor(name: label, type: first.type, shape: [first.cols, rows], data: first.data, owner: first.owner)
            values = parts.flatMap(\.values)
        }

        init(_ raw: WeightTensor) {
            self.raw = raw
            values = raw.type == .f32 ? Array(UnsafeBufferPointer(start: raw.data.baseAddress!.assumingMemoryBound(to: Float.self), count: raw.elementCount))
                : CPUKernels.dequantizeMatrix(raw.type, bytes: raw.data, rows: raw.rows, cols: raw.cols)
        }
    }

    public final class Cache {
        let keys: Tensor?
        let values: Tensor
        let rowSize: Int
        let capacity: Int
        init(capacity: Int, rowSize: Int, storesKeys: Bool) {
            self.capacity = capacity
            self.rowSize = rowSize
            keys = storesKeys ? Tensor(capacity * rowSize) : nil
            values = Tensor(capacity * rowSize)
        }
    }

    public let name = "cpu"
    private let scratch = ProductScratch<CPUBackend>()
    public init() {}

    /// Analysis hook: called after every attention with the full probabilities [heads, rows, keys]
    /// (causal, masked entries 0) of the layer named by the last `setGroup("layer N")`.
    public var attentionObserver: ((_ layer: Int, _ probabilities: UnsafeBufferPointer<Float>, _ heads: Int, _ rows: Int, _ keys: Int) -> Void)?
    /// Layer of the current `setGroup`, -1 outside layers.
    private var currentLayer = -1

    public func makeTensor(_ count: Int, label: String) throws -> Tensor { Tensor(count) }
    public func loadWeight(_ weight: WeightTensor) throws -> Weight { Weight(weight) }
    public func loadStacked(_ weights: [WeightTensor], label: String) throws -> Weight {
        Weight(stacking: weights.map(Weight.init), label: label)
    }
    public func makeCache(capacity: Int, rowSize: Int, storesKeys: Bool, label: String) throws -> Cache {
        Cache(capacity: capacity, rowSize: rowSize, storesKeys: storesKeys)
    }
    public func setGroup(_ group: String) {
        currentLayer = group.hasPrefix("layer ") ? Int(group.dropFirst(6)) ?? -1 : -1
    }

    public func embed(_ table: Weight, tokens: [Int], into out: Tensor) throws {
        precondition(tokens.count * table.cols <= out.count)
        try CPUKernels.embedding(table: table.raw.data.baseAddress!, type: table.raw.type, rowLength: table.cols,
                                 vocabularySize: table.rows, tokenIds: tokens, into: out.storage)
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
                              theta: Float, layout: RopeLayout, cache: Cache) throws {
        guard let keys = cache.keys else { throw ModelLoadError("ropeIntoCache: the cache stores no keys") }
        let qSize = heads * headDim, kvSize = kvHeads * headDim, rowSize = qSize + 2 * kvSize
        precondition(kvSize == cache.rowSize && startPosition + rows <= cache.capacity && rows * rowSize <= qkv.count)
        // Same kernels as rope + store: K and V rows are copied into the cache, then K is rotated there.
        let offset = startPosition * kvSize
        for r in 0..<rows {
            let row = qkv.storage + r * rowSize
            CPUKernels.rope(row, rows: 1, heads: heads, headDim: headDim, startPosition: startPosition + r, theta: theta, layout: layout)
            (keys.storage + offset + r * kvSize).update(from: row + qSize, count: kvSize)
            (cache.values.storage + offset + r * kvSize).update(from: row + qSize + kvSize, count: kvSize)
        }
        CPUKernels.rope(keys.storage + offset, rows: rows, heads: kvHeads, headDim: headDim, startPosition: startPosition,
                        theta: theta, layout: layout)
    }

    public func store(keys: Tensor?, keyOffset: Int, values: Tensor, valueOffset: Int, cache: Cache, rows: Int, startPosition: Int) throws {
        precondition(startPosition + rows <= cache.capacity)
        let offset = startPosition * cache.rowSize
        if let keys, let cacheKeys = cache.keys {
            (cacheKeys.storage + offset).update(from: keys.storage + keyOffset, count: rows * cache.rowSize)
        }
        (cache.values.storage + offset).update(from: values.storage + valueOffset, count: rows * cache.rowSize)
    }

    public func splitColumns(_ x: Tensor, rows: Int, rowSize: Int, into parts: [(offset: Int, size: Int, tensor: Tensor)]) throws {
        for part in parts {
            precondition(part.offset + part.size <= rowSize && rows * part.size <= part.tensor.count)
            for r in 0..<rows {
                (part.tensor.storage + r * part.size).update(from: x.storage + r * rowSize + part.offset, count: part.size)
            }
        }
    }

    public func attention(queries: Tensor, keys: Cache, values: Cache, into out: Tensor, rows: Int, startPosition: Int,
                          heads: Int, kvHeads: Int, headDim: Int, probabilities: Tensor?) throws {
        guard let k = keys.keys else { throw ModelLoadError("attention reads keys from a cache that stores none") }
        let total = startPosition + rows
        // The observer needs the whole matrix; the same kernel writes it (results are identical either way).
        let observed: UnsafeMutablePointer<Float>? = attentionObserver == nil ? nil
            : probabilities?.storage ?? .allocate(capacity: heads * rows * total)
        defer { if let observed, observed != probabilities?.storage { observed.deallocate() } }
        CPUKernels.attention(q: queries.storage, k: k.storage, v: values.values.storage, out: out.storage,
                             queryCount: rows, keyCount: total, heads: heads, kvHeads: kvHeads, headDim: headDim,
                             queryStart: startPosition, probabilitiesOut: observed ?? probabilities?.storage)
        if let observed, let attentionObserver {
            attentionObserver(currentLayer, UnsafeBufferPointer(start: observed, count: heads * rows * total), heads, rows, total)
        }
    }

    public func applyProbabilities(_ probabilities: Tensor, cache: Cache, into out: Tensor, context: Int,
                                   heads: Int, kvHeads: Int, headDim: Int) throws {
        CPUKernels.applyProbabilities(probabilities.storage, v: cache.values.storage, out: out.storage, queryCount: 1,
                                      keyCount: context, heads: heads, kvHeads: kvHeads, headDim: headDim)
    }

    public func copyRow(_ x: Tensor, row: Int, rowSize: Int, into out: Tensor) throws {
        out.storage.update(from: x.storage + row * rowSize, count: rowSize)
    }

    public func swiglu(gate: Tensor, gateOffset: Int, up: Tensor, upOffset: Int, into out: Tensor, count: Int) throws {
        CPUKernels.swiglu(gate: gate.storage + gateOffset, up: up.storage + upOffset, into: out.storage, count: count)
    }

    public func add(_ a: Tensor, _ b: Tensor, into out: Tensor, count: Int) throws {
        CPUKernels.add(a.storage, b.storage, into: out.storage, count: count)
    }

    public func read(_ tensor: Tensor, offset: Int, count: Int) throws -> [Float] {
        precondition(offset + count <= tensor.count)
        return Array(UnsafeBufferPointer(start: tensor.storage + offset, count: count))
    }

    public func finish() throws {}
}
