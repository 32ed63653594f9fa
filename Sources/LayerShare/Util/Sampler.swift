import Foundation

/// Invalid sampler settings.
public enum SamplerError: Error, Equatable, CustomStringConvertible {
    case invalidTemperature(Float)
    case invalidTopK(Int)
    case invalidTopP(Float)
    case invalidMinP(Float)
    case invalidRepeatPenalty(Float)
    case invalidRepeatLastN(Int)

    public var description: String {
        switch self {
        case .invalidTemperature(let t): return "temperature must be a finite number ≥ 0 (0 = greedy), got \(t)"
        case .invalidTopK(let k): return "top-k must be ≥ 0 (0 = off), got \(k)"
        case .invalidTopP(let p): return "top-p must be in (0, 1] (1 = off), got \(p)"
        case .invalidMinP(let p): return "min-p must be in [0, 1] (0 = off), got \(p)"
        case .invalidRepeatPenalty(let r): return "repeat-penalty must be a finite number other than 0 (1 = off), got \(r)"
        case .invalidRepeatLastN(let n): return "repeat-last-n must be ≥ 0, got \(n)"
        }
    }
}

/// Picks the next token from a row of logits.
///
/// temperature 0 is greedy (argmax, lowest index on ties). Otherwise: softmax(logits / T),
/// keep the `topK` most likely tokens (0 = all), renormalize, keep the smallest prefix whose
/// probability reaches `topP` (always at least one token), keep the tokens whose temperature-1
/// probability is at least `minP` × the largest (0 = off, as llama.cpp), and draw from what is
/// left with a seeded xoshiro256** stream, so a given seed reproduces the same choices.
/// `penalizeRepeats` (llama.cpp's repeat penalty) is applied to the logits first, greedy included.
/// NaN logits are treated as −∞ (never chosen while any other logit is a number).
public struct Sampler: Sendable {
    public let temperature: Float
    public let topK: Int
    public let topP: Float
    public let minP: Float
    public let seed: UInt64
    /// Divides positive (multiplies negative) logits of recently seen tokens; 1 = off.
    public let repeatPenalty: Float
    /// How many of the latest tokens the repeat penalty looks at.
    public let repeatLastN: Int
    private var generator: Xoshiro256StarStar

    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, minP: Float = 0, seed: UInt64 = 0,
                repeatPenalty: Float = 1, repeatLastN: Int = 64) throws {
        guard temperature.isFinite, temperature >= 0 else { throw SamplerError.invalidTemperature(temperature) }
        guard topK >= 0 else { throw SamplerError.invalidTopK(topK) }
        guard topP > 0, topP <= 1 else { throw SamplerError.invalidTopP(topP) }  // also rejects NaN
        guard minP >= 0, minP <= 1 else { throw SamplerError.invalidMinP(minP) }
        guard repeatPenalty.isFinite, repeatPenalty != 0 else { throw SamplerError.invalidRepeatPenalty(repeatPenalty) }
        guard repeatLastN >= 0 else { throw SamplerError.invalidRepeatLastN(repeatLastN) }
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.minP = minP
        self.seed = seed
        self.repeatPenalty = repeatPenalty
        self.repeatLastN = repeatLastN
        self.generator = Xoshiro256StarStar(seed: seed)
    }

    /// llama.cpp's repeat penalty on `logits`: each distinct token among the last `repeatLastN`
    /// of `history` has its logit divided by the penalty when positive, multiplied when not.
    public func penalizeRepeats(_ logits: inout [Float], history: [Int]) {
        guard repeatPenalty != 1, repeatLastN > 0 else { return }
        for token in Set(history.suffix(repeatLastN)) where logits.indices.contains(token) {
            logits[token] = logits[token] > 0 ? logits[token] / repeatPenalty : logits[token] * repeatPenalty
        }
    }

    /// The chosen token id (an index into `logits`, which must not be empty).
    public mutating func sample(logits: UnsafeBufferPointer<Float>) -> Int {
        precondition(!logits.isEmpty, "cannot sample from an empty logits row")
        let best = Sampler.argmax(logits)
        if temperature == 0 { return best }
        let maxLogit = Double(Sampler.value(logits, best))
        guard maxLogit.isFinite else { return best }  // all −∞/NaN, or a +∞ logit dominates

        // Unnormalized probabilities in Double: exp((l − max)/T) ∈ [0, 1].
        let t = Double(temperature)
        let weight = { (i: Int) -> Double in exp((Double(Sampler.value(logits, i)) - maxLogit) / t) }

        // Candidates in decreasing logit order (ties: lower index first) with their weights, and
        // the total weight that top-p takes its fraction of.
        let candidates: [Int]
        var weights: [Double]
        var total: Double
        if topK > 0 {
            candidates = Sampler.topIndices(logits, limit: min(topK, logits.count))
            weights = candidates.map(weight)
            total = weights.reduce(0, +)
        } else {
            let all = logits.indices.map(weight)
            total = all.reduce(0, +)
            // No filtering at all: the order of the walk does not matter, so skip ranking.
            if topP == 1 && minP == 0 { return draw(weights: all, total: total) ?? best }
            if topP == 1 {  // min-p alone: rank only the tokens above its floor
                let floor = maxLogit + log(Double(minP))
                candidates = logits.indices.filter { Double(Sampler.value(logits, $0)) >= floor }.sorted { Sampler.ranksBefore(logits, $0, $1) }
            } else {
                candidates = Sampler.nucleusSuperset(logits, weights: all, total: total, topP: Double(topP))
            }
            weights = candidates.map { all[$0] }
        }

        if topP < 1 {
            let threshold = Double(topP) * total
            var cumulative = 0.0, kept = 0
            while kept < weights.count {
                cumulative += weights[kept]
                kept += 1
                if cumulative >= threshold { break }
            }
            weights.removeSubrange(kept...)
            total = cumulative
        }
        if minP > 0 {
            // Candidates are ranked, so the tokens above the floor are a prefix (the best always is).
            let floor = maxLogit + log(Double(minP))
            let kept = max(1, candidates.prefix(weights.count).prefix { Double(Sampler.value(logits, $0)) >= floor }.count)
            weights.removeSubrange(kept...)
            total = weights.reduce(0, +)
        }
        return draw(weights: weights, total: total).map { candidates[$0] } ?? best
    }

    /// Draws an index of `weights` with probability weight/total (nil only if all are 0).
    private mutating func draw(weights: [Double], total: Double) -> Int? {
        let target = generator.nextUnitDouble() * total
        var cumulative = 0.0
        for (i, w) in weights.enumerated() {
            cumulative += w
            if target < cumulative { return i }
        }
        return weights.lastIndex { $0 > 0 }  // rounding left target ≥ the sum
    }

    /// Ranked tokens that include the whole top-p nucleus, without sorting the vocabulary:
    /// the tokens with weight ≥ τ are a prefix of the ranking, so once they reach topP of the
    /// total, the nucleus lies inside them. τ starts at 1e-3 of the maximum and drops until that
    /// holds.
    private static func nucleusSuperset(_ logits: UnsafeBufferPointer<Float>, weights: [Double],
                                        total: Double, topP: Double) -> [Int] {
        var threshold = 1e-3
        while threshold > 0 {
            let covered = weights.reduce(0) { $1 >= threshold ? $0 + $1 : $0 }
            if covered >= topP * total { break }
            threshold = threshold < 1e-300 ? 0 : threshold * 1e-3
        }
        let candidates = weights.indices.filter { weights[$0] >= threshold }
        return candidates.sorted { ranksBefore(logits, $0, $1) }
    }

    /// Convenience for arrays.
    public mutating func sample(logits: [Float]) -> Int {
        logits.withUnsafeBufferPointer { sample(logits: $0) }
    }

    /// Index of the largest logit, lowest index on ties, NaN ignored (0 if all are NaN).
    public static func argmax(_ logits: UnsafeBufferPointer<Float>) -> Int {
        var best = 0
        var bestValue = -Float.infinity
        for i in logits.indices where logits[i] > bestValue { best = i; bestValue = logits[i] }
        return best
    }

    @inline(__always)
    private static func value(_ logits: UnsafeBufferPointer<Float>, _ i: Int) -> Float {
        logits[i].isNaN ? -.infinity : logits[i]
    }

    /// Whether token a ranks before token b.
    @inline(__always)
    private static func ranksBefore(_ logits: UnsafeBufferPointer<Float>, _ a: Int, _ b: Int) -> Bool {
        let va = value(logits, a), vb = value(logits, b)
        return va > vb || (va == vb && a < b)
    }

    /// The `limit` best indices, best first. Small limits keep a sorted window while scanning
    /// once (most logits fail the comparison with the current worst); large ones sort everything.
    private static func topIndices(_ logits: UnsafeBufferPointer<Float>, limit: Int) -> [Int] {
        if limit > 256 {
            return Array(logits.indices.sorted { ranksBefore(logits, $0, $1) }.prefix(limit))
        }
        var window: [Int] = []
        window.reserveCapacity(limit + 1)
        for i in logits.indices {
            if window.count == limit, !ranksBefore(logits, i, window[limit - 1]) { continue }
            var position = window.count
            while position > 0, ranksBefore(logits, i, window[position - 1]) { position -= 1 }
            window.insert(i, at: position)
            if window.count > limit { window.removeLast() }
        }
        return window
    }
}
