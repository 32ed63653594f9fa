import Foundation

/// Fits one LiSA layer's parameters by minimising `LiSAObjective` with Adam (full batch: every
/// sampled row of every calibration sequence at each step).
public struct LiSAFitter {
    public struct Options: Equatable, Sendable {
        public var steps: Int
        /// Adam step sizes of the alignment network and of the low-rank projections.
        public var alignmentRate: Float
        public var lowRankRate: Float
        public init(steps: Int = 150, alignmentRate: Float = 1e-2, lowRankRate: Float = 2e-3) {
            self.steps = steps; self.alignmentRate = alignmentRate; self.lowRankRate = lowRankRate
        }
    }

    /// The arrays Adam trains, with their step size.
    static func trained(_ o: Options) -> [(WritableKeyPath<LiSALayerParameters, [Float]>, Float)] {
        [(\.headMix, o.alignmentRate), (\.ffnIn, o.alignmentRate), (\.ffnInBias, o.alignmentRate), (\.ffnOut, o.alignmentRate),
         (\.outBias, o.alignmentRate), (\.queryLowRank, o.lowRankRate), (\.keyLowRank, o.lowRankRate)]
    }

    public let objective: LiSAObjective
    public let options: Options
    public init(objective: LiSAObjective, options: Options) { self.objective = objective; self.options = options }

    /// Returns the parameters with the lowest loss seen, that loss, and the starting loss.
    /// `progress(step, loss)` after every step; `shouldStop` is polled between steps.
    public func fit(from start: LiSALayerParameters, progress: (Int, Double) -> Void = { _, _ in },
                    shouldStop: () -> Bool = { false }) -> (parameters: LiSALayerParameters, loss: Double, initialLoss: Double) {
        var p = start
        let arrays = Self.trained(options)
        var m = arrays.map { [Float](repeating: 0, count: p[keyPath: $0.0].count) }, v = m
        let beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8
        var best = p, bestLoss = Double.infinity, initial = Double.nan
        for step in 0...options.steps {
            let (loss, g) = objective.evaluate(p, gradient: step < options.steps)
            if step == 0 { initial = loss }
            if loss < bestLoss { bestLoss = loss; best = p }
            progress(step, loss)
            if step == options.steps || shouldStop() { break }
            let t = Float(step + 1)
            let c1 = 1 - pow(beta1, t), c2 = 1 - pow(beta2, t)
            for (a, (path, rate)) in arrays.enumerated() {
                let grad = g[keyPath: path]
                var values = p[keyPath: path]
                for i in values.indices {
                    m[a][i] = beta1 * m[a][i] + (1 - beta1) * grad[i]
                    v[a][i] = beta2 * v[a][i] + (1 - beta2) * grad[i] * grad[i]
                    values[i] -= rate * (m[a][i] / c1) / ((v[a][i] / c2).squareRoot() + eps)
                }
                p[keyPath: path] = values
            }
        }
        return (best, bestLoss, initial)
    }
}
