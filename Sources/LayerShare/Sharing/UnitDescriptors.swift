import CBLAS
import ModelFormats

/// Every unit's descriptor (its strategy's rows, dequantized to float32 and concatenated) as one row
/// of a matrix, scaled to unit length so that dot products of rows are cosines.
/// Row `layer · kvHeads + group` is that unit.
struct UnitDescriptors {
    let layers: Int
    let kvHeads: Int
    /// Floats per descriptor.
    let length: Int
    /// units × length, row-major.
    private(set) var rows: [Float]

    var units: Int { layers * kvHeads }

    /// Reads `strategy`'s rows of every unit; `progress(layersDone, layers)` after each layer.
    init(weights: WeightSource, strategy: HeadShareStrategy, progress: (Int, Int) -> Void = { _, _ in }) throws {
        let h = weights.hyper
        layers = h.layers
        kvHeads = h.kvHeads
        length = try Self.length(strategy, hyper: h)
        let (units, o1) = h.layers.multipliedReportingOverflow(by: h.kvHeads)
        let (total, o2) = units.multipliedReportingOverflow(by: length)
        // BLAS takes 32-bit sizes and leading dimensions.
        guard !o1, !o2, length <= Int(Int32.max), units <= Int(Int32.max) else {
            throw ModelLoadError("head descriptors of \(h.layers) layers × \(h.kvHeads) groups × \(length) floats are too large")
        }
        rows = [Float](repeating: 0, count: total)
        for layer in 0..<h.layers {
            try fill(layer: layer, weights: weights, strategy: strategy)
            progress(layer + 1, h.layers)
        }
        normalize()
    }

    /// Floats in one descriptor: hidden-size rows of every projection the strategy names.
    static func length(_ strategy: HeadShareStrategy, hyper h: LlamaHyperParameters) throws -> Int {
        var rows = 0
        for p in strategy.projections { rows += p.range(group: 0, hyper: h).count }
        let (n, overflow) = rows.multipliedReportingOverflow(by: h.hiddenSize)
        guard !overflow else { throw ModelLoadError("a head descriptor of \(rows) rows × \(h.hiddenSize) overflows") }
        return n
    }

    /// Dequantizes the layer's rows straight into each of its units' descriptors.
    private mutating func fill(layer: Int, weights: WeightSource, strategy: HeadShareStrategy) throws {
        let h = weights.hyper, k = kvHeads, n = length
        var offset = 0
        for p in strategy.projections {
            let t = try weights.attentionTensor(p, layer: layer)
            guard let rowBytes = t.type.rowBytes(t.cols), let base = t.data.baseAddress, t.data.count >= rowBytes * t.rows else {
                throw ModelLoadError("\(t.name): \(t.data.count) bytes do not hold \(t.rows) rows of \(t.cols) \(t.type) values")
            }
            let span = p.range(group: 0, hyper: h).count * t.cols
            rows.withUnsafeMutableBufferPointer { out in
                for g in 0..<k {
                    var dst = out.baseAddress! + (layer * k + g) * n + offset
                    for r in p.range(group: g, hyper: h) {
                        Dequantize.row(t.type, base + r * rowBytes, count: t.cols, into: dst)
                        dst += t.cols
                    }
                }
            }
            offset += span
        }
    }

    /// Scales each row to unit length; an all-zero row stays zero (cosine 0 with everything).
    private mutating func normalize() {
        let n = length, count = units
        rows.withUnsafeMutableBufferPointer { buf in
            for u in 0..<count {
                let row = buf.baseAddress! + u * n
                var sum = 0.0  // in Double: descriptors have ~10⁵ elements
                for i in 0..<n { sum += Double(row[i]) * Double(row[i]) }
                guard sum > 0 else { continue }
                cblas_sscal(Int32(n), Float(1 / sum.squareRoot()), row, 1)
            }
        }
    }

    /// Cosines of every unit of each layer l ≥ 1 with every unit of layers 0..<l, by one BLAS product
    /// per layer (the lower block triangle of the Gram matrix; nothing else is a candidate).
    func earlierCosines(progress: (Int, Int) -> Void = { _, _ in }) -> UnitCosines {
        let k = kvHeads, n = units
        var values = [Float](repeating: .nan, count: n * n)
        rows.withUnsafeBufferPointer { x in
            values.withUnsafeMutableBufferPointer { c in
                for l in 1..<max(layers, 1) {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(k), Int32(l * k), Int32(length), 1,
                                x.baseAddress! + l * k * length, Int32(length), x.baseAddress!, Int32(length),
                                0, c.baseAddress! + l * k * n, Int32(n))
                    progress(l, layers - 1)
                }
            }
        }
        return UnitCosines(kvHeads: k, units: n, values: values)
    }
}

/// cos(target, reference) for a target unit and a unit of an earlier layer.
public struct UnitCosines: Sendable {
    let kvHeads: Int
    let units: Int
    /// units × units; only entries with the column's layer before the row's are filled.
    let values: [Float]

    func index(_ u: WeightUnit) -> Int { u.layer * kvHeads + u.group }

    public func callAsFunction(_ target: WeightUnit, _ reference: WeightUnit) -> Double {
        precondition(reference.layer < target.layer, "cosines are kept only against earlier layers")
        return Double(values[index(target) * units + index(reference)])
    }
}
