import Foundation
@testable import LayerShare
import ModelFormats

/// A tiny float32 model held in memory: random attention weights that a test then edits (copies one
/// unit's slices into another) so the matcher's answer is known.
final class SyntheticWeights: WeightSource {
    let hyper: LlamaHyperParameters
    private var values: [String: [Float]] = [:]
    private var shapes: [String: [Int]] = [:]

    init(layers: Int, kvHeads: Int, groupSize: Int, headDim: Int, hidden: Int, random: inout TestRandom) {
        hyper = LlamaHyperParameters(layers: layers, hiddenSize: hidden, ffnSize: 2 * hidden, heads: kvHeads * groupSize,
                                     kvHeads: kvHeads, headDim: headDim, vocabSize: 16, rmsEps: 1e-5, ropeTheta: 10000,
                                     contextLength: 64, tiedEmbeddings: true, ropeLayout: .adjacentPairs)
        for l in 0..<layers {
            for p in UnitProjection.allCases {
                let name = p.tensorName(layer: l)
                let shape = p == .output ? [hyper.qSize, hidden] : [hidden, p == .query ? hyper.qSize : hyper.kvSize]
                shapes[name] = shape
                values[name] = random.floats(shape[0] * shape[1])
            }
        }
    }

    var tensorNames: [String] { values.keys.sorted() }

    func weight(_ name: String) throws -> WeightTensor {
        guard let v = values[name], let shape = shapes[name] else { throw ModelError.missingTensor(name) }
        let storage = Storage(v)
        return WeightTensor(name: name, type: .f32, shape: shape, data: UnsafeRawBufferPointer(storage.buffer), owner: storage)
    }

    var identity: ModelIdentity { ModelIdentity(hyper: hyper, weightsHash: nil, file: nil) }

    /// The unit's rows of a Q, K or V tensor, flattened.
    func slice(_ unit: WeightUnit, _ p: UnitProjection) -> [Float] {
        precondition(p != .output, "O slices are columns")
        let rows = p.range(group: unit.group, hyper: hyper)
        let n = hyper.hiddenSize
        return Array(values[p.tensorName(layer: unit.layer)]![rows.lowerBound * n ..< rows.upperBound * n])
    }

    func setSlice(_ unit: WeightUnit, _ p: UnitProjection, _ v: [Float]) {
        let rows = p.range(group: unit.group, hyper: hyper)
        let n = hyper.hiddenSize
        precondition(v.count == rows.count * n)
        values[p.tensorName(layer: unit.layer)]!.replaceSubrange(rows.lowerBound * n ..< rows.upperBound * n, with: v)
    }

    /// `to`'s Q, K and V rows become `scale` × `from`'s.
    func copy(_ from: WeightUnit, to: WeightUnit, scale: Float = 1, projections: [UnitProjection] = [.query, .key, .value]) {
        for p in projections { setSlice(to, p, slice(from, p).map { $0 * scale }) }
    }

    /// `to`'s Q, K and V rows become `from`'s plus uniform noise in ±amplitude.
    func perturbedCopy(_ from: WeightUnit, to: WeightUnit, amplitude: Float, random: inout TestRandom) {
        for p in [UnitProjection.query, .key, .value] {
            let base = slice(from, p)
            let noise = random.floats(base.count, -amplitude, amplitude)
            setSlice(to, p, zip(base, noise).map { $0 + $1 })
        }
    }

    private final class Storage {
        let buffer: UnsafeMutableRawBufferPointer
        init(_ v: [Float]) {
            buffer = .allocate(byteCount: v.count * 4, alignment: 16)
            v.withUnsafeBytes { buffer.copyMemory(from: $0) }
        }
        deinit { buffer.deallocate() }
    }
}
