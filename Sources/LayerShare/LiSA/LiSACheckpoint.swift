import Foundation
import ModelFormats

/// Layers fitted so far by a calibration run, kept on disk after each layer (an adapter file whose
/// metadata also records each layer's fitted and starting KL). Named by the settings' key, so a
/// run with other settings starts afresh instead of mixing fits.
struct LiSACheckpoint {
    struct Fitted { let parameters: LiSALayerParameters; let loss: Double; let initialLoss: Double }

    let path: String
    let key: String
    let hyper: LlamaHyperParameters
    private(set) var layers: [Int: Fitted] = [:]

    init(directory: String, key: String, hyper: LlamaHyperParameters) throws {
        path = directory + "/checkpoint-" + WeightsHash.hex(WeightsHash.feed(WeightsHash.offsetBasis, Array(key.utf8))) + ".safetensors"
        self.hyper = hyper
        self.key = key
        guard let data = try FileCheck.contentsIfPresent(path, "LiSA checkpoint") else { return }
        let (parameters, metadata) = try LiSAAdapter.decode(data, path: path, layers: nil, hyper: hyper)
        guard metadata["key"] == key else { return }
        for (l, p) in parameters {
            guard let loss = metadata["blk.\(l).lisa.kl"].flatMap(Double.init), let start = metadata["blk.\(l).lisa.kl_start"].flatMap(Double.init) else { continue }
            layers[l] = Fitted(parameters: p, loss: loss, initialLoss: start)
        }
    }

    /// Records a fitted layer and rewrites the file (atomically: an interrupted write keeps the old one).
    mutating func add(_ p: LiSALayerParameters, loss: Double, initialLoss: Double) throws {
        layers[p.layer] = Fitted(parameters: p, loss: loss, initialLoss: initialLoss)
        var metadata = ["key": key]
        for (l, f) in layers {
            metadata["blk.\(l).lisa.kl"] = String(f.loss)
            metadata["blk.\(l).lisa.kl_start"] = String(f.initialLoss)
        }
        try LiSAAdapter.write(layers.values.map(\.parameters), modelHash: nil, metadata: metadata, to: path)
    }
}
