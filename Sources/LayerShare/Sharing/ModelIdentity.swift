import Foundation
import ModelFormats

/// What a sharing plan or an analysis was made for: the model's shape and a hash of its weights.
public struct ModelIdentity: Codable, Equatable, Sendable {
    public var architecture: String
    public var layers: Int
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var hiddenSize: Int
    /// `WeightsHash` of every tensor; nil in hand-written plans that only pin the shape.
    public var weightsHash: String?
    /// File the plan was made from (informational, never checked: models move).
    public var file: String?

    public init(hyper h: LlamaHyperParameters, weightsHash: String?, file: String?) {
        architecture = h.architecture
        layers = h.layers
        heads = h.heads
        kvHeads = h.kvHeads
        headDim = h.headDim
        hiddenSize = h.hiddenSize
        self.weightsHash = weightsHash
        self.file = file
    }

    public static func of(_ model: LoadedModel) throws -> ModelIdentity {
        ModelIdentity(hyper: model.hyper, weightsHash: try WeightsHash.of(model),
                      file: URL(fileURLWithPath: model.path).lastPathComponent)
    }

    /// Every field that differs from `actual`, as readable problems (hash compared only when both have one).
    func mismatches(against actual: ModelIdentity) -> [String] {
        var out: [String] = []
        func check<T: Equatable>(_ name: String, _ mine: T, _ theirs: T) {
            if mine != theirs { out.append("model \(name) is \(mine) in the plan but \(theirs) in the model") }
        }
        check("architecture", architecture, actual.architecture)
        check("layers", layers, actual.layers)
        check("heads", heads, actual.heads)
        check("kvHeads", kvHeads, actual.kvHeads)
        check("headDim", headDim, actual.headDim)
        check("hiddenSize", hiddenSize, actual.hiddenSize)
        if let mine = weightsHash, let theirs = actual.weightsHash, mine != theirs {
            out.append("model weightsHash is \(mine) in the plan but \(theirs) in the model (the plan was made for different weights)")
        }
        return out
    }
}
