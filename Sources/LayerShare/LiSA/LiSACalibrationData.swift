import Foundation
import ModelFormats

/// Teacher-forcing data of the unmodified model for fitting LiSA layers: per sequence the normed
/// attention input of each candidate layer (every position, as keys) and the true attention
/// log-probabilities of the candidates and their previous layers at a subsample of query rows.
public final class LiSACalibrationData {
    public struct Sequence {
        /// Sampled query positions, ascending.
        public let rows: [Int]
        public let length: Int
        /// Layer → normed input [length, hidden].
        public var inputs: [Int: [Float]] = [:]
        /// Layer → log P [rows.count, heads, length] (entries past a row's position undefined).
        public var logProbabilities: [Int: [Float]] = [:]
    }

    public let hyper: LlamaHyperParameters
    /// Layers fitted (inputs kept) and layers whose log-probabilities are kept (the fitted ones and their previous).
    public let fitted: Set<Int>, recorded: Set<Int>
    public private(set) var sequences: [Sequence] = []

    /// Bytes the data of `sequences` sequences will take.
    public static func bytes(hyper h: LlamaHyperParameters, layers: Int, sequences: Int, length: Int, rows: Int) -> Int {
        let perLayer = length * h.hiddenSize + 2 * rows * h.heads * length
        return sequences * layers * perLayer * 4
    }

    /// Runs the model (CPU, float32) over `windows` (each from an empty cache) and keeps what fitting
    /// `layers` needs; `rowsPerSequence` query rows drawn at random per window (`seed`).
    public init(model: LoadedModel, windows: [[Int]], layers: Set<Int>, rowsPerSequence: Int, seed: UInt64,
                progress: (Int, Int) -> Void = { _, _ in }) throws {
        let h = model.hyper
        hyper = h
        fitted = layers
        recorded = layers.union(layers.map { $0 - 1 })
        guard let length = windows.map(\.count).max(), length >= 2 else { throw ModelLoadError("calibration needs windows of at least 2 tokens") }
        let backend = CPUBackend()
        backend.logObservedLayers = recorded  // log P of the other layers is never needed
        let transformer = try Transformer(backend: backend, weights: model.weights, capacity: length, maxChunk: length)
        var norms: [Int: [Float]] = [:]
        for l in layers { norms[l] = try model.weights.weight(LlamaTensorName.attnNorm(l)).toFloat() }
        var random = Xoshiro256StarStar(seed: seed)
        for (index, window) in windows.enumerated() {
            let n = window.count
            let count = min(rowsPerSequence, n - 1)
            // Rows 1..<n (row 0 has one key: nothing to fit), a random subset.
            var candidates = Array(1..<n)
            for i in 0..<count { candidates.swapAt(i, i + Int(random.next() % UInt64(n - 1 - i))) }
            var sequence = Sequence(rows: candidates.prefix(count).sorted(), length: n)
            let recorded = self.recorded, heads = h.heads
            backend.logAttentionObserver = { layer, logs, obsHeads, rows, keys in
                guard recorded.contains(layer), rows == n, keys == n, obsHeads == heads else { return }
                var kept = [Float](repeating: 0, count: sequence.rows.count * heads * n)
                for (k, i) in sequence.rows.enumerated() {
                    for hd in 0..<heads {
                        let src = (i * heads + hd) * n, dst = (k * heads + hd) * n
                        for j in 0...i { kept[dst + j] = logs[src + j] }
                    }
                }
                sequence.logProbabilities[layer] = kept
            }
            transformer.reset()
            try transformer.forward(window, logits: .none, hidden: { l, x in
                guard let norm = norms[l + 1] else { return }
                var normed = [Float](repeating: 0, count: n * h.hiddenSize)
                CPUKernels.rmsnorm(x, weight: norm, into: &normed, rows: n, dim: h.hiddenSize, eps: h.rmsEps)
                sequence.inputs[l + 1] = normed
            }, logitsSink: nil)
            backend.logAttentionObserver = nil
            for l in self.recorded where sequence.logProbabilities[l] == nil {
                throw ModelLoadError("calibration: layer \(l) reported no attention log-probabilities")
            }
            sequences.append(sequence)
            progress(index + 1, windows.count)
        }
    }
}
