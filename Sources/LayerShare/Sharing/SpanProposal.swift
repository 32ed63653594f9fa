import Foundation

/// Turns an analysis into Shared Attention spans, optionally checked against a perplexity budget.
public enum SpanProposal {
    /// Candidates in order, keeping each one that does not collide with those already kept (no layer
    /// shared twice, no source inside a shared span).
    public static func nonOverlapping(_ candidates: [SpanCandidate]) -> [SpanCandidate] {
        var kept: [SpanCandidate] = []
        for c in candidates where kept.allSatisfy({ compatible($0.range, c.range) }) { kept.append(c) }
        return kept.sorted { $0.first < $1.first }
    }

    /// Two spans can live in one plan: disjoint, and neither one's source (first − 1) inside the other.
    static func compatible(_ a: ClosedRange<Int>, _ b: ClosedRange<Int>) -> Bool {
        !a.overlaps(b) && !a.contains(b.lowerBound - 1) && !b.contains(a.lowerBound - 1)
    }

    public struct Trial: Sendable {
        public var spans: [ClosedRange<Int>]
        public var perplexity: Double
        public var increasePercent: Double
        public var accepted: Bool
    }

    public struct BudgetResult: Sendable {
        public var spans: [ClosedRange<Int>]
        public var baseline: Double
        public var perplexity: Double
        public var trials: [Trial]
    }

    /// Greedy: for each candidate (best first) try it with the spans accepted so far; if perplexity on
    /// `tokens` rises by more than `maxIncreasePercent` over the baseline, retry it shortened from its end
    /// (down to `minLength` layers). Stops after `maxEvaluations` perplexity runs.
    public static func withPerplexityBudget(model: LoadedModel, candidates: [SpanCandidate], tokens: [Int], window: Int,
                                            maxIncreasePercent: Double, minLength: Int, maxEvaluations: Int,
                                            options: RunnerOptions, log: (String) -> Void) throws -> BudgetResult {
        let evaluation = try PerplexityEvaluation(window: window)
        func perplexity(_ spans: [ClosedRange<Int>]) throws -> Double {
            var o = options
            o.context = window
            o.specs = try SharingPlan.sharedAttention(spans: spans, model: model).layerSpecs(for: model.hyper)
            let runner = try RunnerFactory.make(model: model, options: o, log: log)
            return try evaluation.run(runner, tokens: tokens).value
        }
        let start = Date()
        let baseline = try perplexity([])
        log(String(format: "baseline perplexity %.4f on %d held-out tokens (%.0f s)", baseline, tokens.count, Date().timeIntervalSince(start)))
        var accepted: [ClosedRange<Int>] = []
        var current = baseline
        var trials: [Trial] = []
        outer: for c in candidates where accepted.allSatisfy({ compatible($0, c.range) }) {
            var last = c.last
            while last - c.first + 1 >= minLength {
                guard trials.count < maxEvaluations else { log("stopping: --max-evaluations \(maxEvaluations) reached"); break outer }
                let trySpans = (accepted + [c.first...last]).sorted { $0.lowerBound < $1.lowerBound }
                let p = try perplexity(trySpans)
                let increase = (p / baseline - 1) * 100
                let ok = increase <= maxIncreasePercent
                trials.append(Trial(spans: trySpans, perplexity: p, increasePercent: increase, accepted: ok))
                log(String(format: "  try %@: perplexity %.4f (%+.2f%%) %@ (%.0f s)", describe(trySpans), p, increase,
                           ok ? "accepted" : "over budget", Date().timeIntervalSince(start)))
                if ok { accepted = trySpans; current = p; break }
                last -= 1
            }
        }
        return BudgetResult(spans: accepted, baseline: baseline, perplexity: current, trials: trials)
    }

    public static func describe(_ spans: [ClosedRange<Int>]) -> String {
        spans.isEmpty ? "(none)" : spans.map { "\($0.lowerBound)-\($0.upperBound)" }.joined(separator: ",")
    }

    /// Parses "23-26,27-28" (a single layer "5" means 5-5).
    public static func parse(_ text: String) throws -> [ClosedRange<Int>] {
        try text.split(separator: ",").map { part in
            let ends = part.split(separator: "-", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
            switch ends.count {
            case 1: if let a = ends[0] { return a...a }
            case 2: if let a = ends[0], let b = ends[1], a <= b { return a...b }
            default: break
            }
            throw ModelLoadError("bad span \"\(part)\" in --spans: write FIRST-LAST with FIRST ≤ LAST, e.g. 23-26,27-28")
        }
    }
}
