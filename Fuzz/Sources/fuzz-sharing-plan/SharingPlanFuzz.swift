import Foundation
import FuzzSupport
import LayerShare
import ModelFormats

/// A sharing-plan file as `--plan` reads it, against a model of SmolLM2-135M's shape (so the plans
/// in docs/plans fit): decoded, validated, and when valid turned into layer specs and summarised with
/// the weight bytes head sharing saves, then written and read back unchanged.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSharingPlan(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let hyper = FakeWeights.shared.hyper
    guard let plan = try? SharingPlan.decode(fuzzInput(data, size), source: "fuzz.json"),
          (try? plan.validate(against: ModelIdentity(hyper: hyper, weightsHash: nil, file: nil), source: "fuzz.json")) != nil else {
        return 0
    }
    // A LiSA plan's parameters come from its adapter file (checked by LiSAAdapterTests): stand in
    // direct sharing with identity heads, in the section's shape, for each LiSA layer.
    var loaded = plan
    if let s = plan.lisa {
        for l in s.layers {
            loaded.lisaParameters[l] = .permutation(Array(0..<hyper.heads), layer: l, kvHeads: hyper.kvHeads, hidden: hyper.hiddenSize,
                                                    headDim: hyper.headDim, rank: s.rank, ffnWidth: s.ffnWidth)
        }
    }
    let specs: [LayerSpec]
    do { specs = try loaded.layerSpecs(for: hyper) } catch { preconditionFailure("a validated plan has no layer specs: \(error)") }
    _ = AttentionCost(hyper: hyper, specs: specs, context: 1024)
    for s in specs { _ = (s.cache(for: hyper).bytesPerToken, s.cache(for: hyper).summary, s.projections) }
    _ = plan.summary(weights: FakeWeights.shared)
    _ = plan.kvBytesSavedPerToken()
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    guard let written = try? encoder.encode(plan), let reread = try? SharingPlan.decode(written, source: "written") else {
        preconditionFailure("a valid plan does not survive being written")
    }
    precondition(reread == plan, "a written plan reads back different")
    return 0
}

/// SmolLM2-135M's attention shape (what a plan's identity pins) with a tiny vocabulary and FFN, and
/// zero weights in its stored types: enough for specs and savings without loading a model.
final class FakeWeights: WeightSource {
    static let shared = FakeWeights()
    let hyper = LlamaHyperParameters(layers: 30, hiddenSize: 576, ffnSize: 64, heads: 9, kvHeads: 3, headDim: 64,
                                     vocabSize: 64, rmsEps: 1e-5, ropeTheta: 100_000, contextLength: 8192,
                                     tiedEmbeddings: true, ropeLayout: .adjacentPairs)
    private(set) var tensorNames: [String] = []
    private var shapes: [String: [Int]] = [:]
    private var zeros = UnsafeMutableRawBufferPointer(start: nil, count: 0)

    private init() {
        for (name, shape) in expectedLlamaShapes() { tensorNames.append(name); shapes[name] = shape }
        let largest = shapes.values.map { Self.type(of: $0).rowBytes($0[0])! * $0.dropFirst().reduce(1, *) }.max()!
        zeros = .allocate(byteCount: largest, alignment: 16)
        zeros.initializeMemory(as: UInt8.self, repeating: 0)
    }

    private static func type(of shape: [Int]) -> GGMLType { shape.count == 1 ? .f32 : .q4_1 }

    func weight(_ name: String) throws -> WeightTensor {
        guard let shape = shapes[name] else { throw ModelError.missingTensor(name) }
        let type = Self.type(of: shape)
        let bytes = type.rowBytes(shape[0])! * shape.dropFirst().reduce(1, *)
        return WeightTensor(name: name, type: type, shape: shape, data: UnsafeRawBufferPointer(rebasing: zeros[0..<bytes]), owner: self)
    }
}
