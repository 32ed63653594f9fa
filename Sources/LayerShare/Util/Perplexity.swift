import Foundation

/// Accumulates the negative log-likelihood of target tokens under predicted logits.
/// The log-softmax is evaluated in Double (max-subtracted, log-sum-exp), so the accumulator adds
/// no error of its own on top of the logits being measured.
public struct Perplexity: Sendable {
    /// Number of predictions added.
    public private(set) var count = 0
    /// Sum of −log p(target) over all predictions, in nats.
    public private(set) var totalNegativeLogLikelihood = 0.0
    /// Sum of the squared per-prediction NLLs, for the standard error.
    public private(set) var totalSquaredNegativeLogLikelihood = 0.0

    public init() {}

    /// Adds one prediction: `logits` over the vocabulary and the id that actually came next.
    public mutating func add(logits: UnsafeBufferPointer<Float>, target: Int) {
        precondition(logits.indices.contains(target), "target \(target) is outside 0..<\(logits.count)")
        var maxLogit = -Double.infinity
        for l in logits { maxLogit = max(maxLogit, Double(l)) }
        var sum = 0.0
        for l in logits { sum += exp(Double(l) - maxLogit) }
        let logProbability = Double(logits[target]) - maxLogit - log(sum)
        totalNegativeLogLikelihood -= logProbability
        totalSquaredNegativeLogLikelihood += logProbability * logProbability
        count += 1
    }

    /// Convenience for arrays.
    public mutating func add(logits: [Float], target: Int) {
        logits.withUnsafeBufferPointer { add(logits: $0, target: target) }
    }

    /// Mean negative log-likelihood in nats (NaN before anything was added).
    public var meanNegativeLogLikelihood: Double { count == 0 ? .nan : totalNegativeLogLikelihood / Double(count) }

    /// exp(mean NLL) (NaN before anything was added).
    public var value: Double { exp(meanNegativeLogLikelihood) }

    /// Standard error of `value` as llama-perplexity reports it: the standard error of the mean NLL,
    /// sqrt((E[v²] − E[v]²) / (n − 1)), times the perplexity. Nil below two predictions or without spread.
    public var standardError: Double? {
        guard count >= 2 else { return nil }
        let mean = meanNegativeLogLikelihood
        let variance = totalSquaredNegativeLogLikelihood / Double(count) - mean * mean
        guard variance > 0 else { return nil }
        return (variance / Double(count - 1)).squareRoot() * value
    }
}
