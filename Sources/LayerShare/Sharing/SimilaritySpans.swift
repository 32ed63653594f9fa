import Foundation

/// A contiguous run of layers that all attend much like the layer just before it.
public struct SpanCandidate: Equatable, Sendable {
    public var first: Int
    public var last: Int
    public var source: Int { first - 1 }
    /// Mean and minimum cosine of the span's layers with the source.
    public var meanCosine: Double
    public var minCosine: Double
    public var length: Int { last - first + 1 }
    public var range: ClosedRange<Int> { first...last }
}

extension AttentionSimilarity {
    /// Every maximal span `a...b` with a ≥ 2 (layers 0 and 1 are never shared), b ≤ L − 2 (the last layer
    /// is never shared) and length ≥ `minLength`, whose layers all have cosine ≥ `threshold` with layer a − 1.
    /// Sorted by mean cosine with the source, then length.
    public func candidateSpans(threshold: Double, minLength: Int = 2) -> [SpanCandidate] {
        let L = layers
        var out: [SpanCandidate] = []
        guard L >= 4 else { return out }
        for source in 1...(L - 3) {
            var last = source
            while last + 1 <= L - 2 && cosine[source][last + 1] >= threshold { last += 1 }
            // A span has at least one layer, whatever `minLength` asks.
            guard last > source, last - source >= minLength else { continue }
            out.append(spanCandidate(first: source + 1, last: last))
        }
        return out.sorted { ($0.meanCosine, $0.length) > ($1.meanCosine, $1.length) }
    }

    func spanCandidate(first: Int, last: Int) -> SpanCandidate {
        let values = (first...last).map { cosine[first - 1][$0] }
        return SpanCandidate(first: first, last: last, meanCosine: values.reduce(0, +) / Double(values.count),
                             minCosine: values.min() ?? 0)
    }

    /// Layers 1..<L ordered from least to most similar to their predecessor.
    public var leastSimilarToPredecessor: [(layer: Int, cosine: Double, jensenShannon: Double)] {
        (1..<max(layers, 1)).map { ($0, cosine[$0][$0 - 1], jensenShannon[$0][$0 - 1]) }.sorted { $0.cosine < $1.cosine }
    }

    /// A few lines for the terminal.
    public func summary(threshold: Double, top: Int = 5) -> String {
        var lines: [String] = []
        lines.append(String(format: "attention similarity of %d layers, %d sequence(s) × %d tokens of %@",
                            layers, settings.sequences, settings.tokensPerSequence, settings.file))
        let adjacent = (1..<max(layers, 1)).map { cosine[$0][$0 - 1] }
        if !adjacent.isEmpty {
            lines.append(String(format: "cosine with the previous layer: mean %.3f, min %.3f, max %.3f",
                                adjacent.reduce(0, +) / Double(adjacent.count), adjacent.min()!, adjacent.max()!))
        }
        let spans = candidateSpans(threshold: threshold)
        lines.append(String(format: "most similar spans (length ≥ 2, every layer's cosine with the source ≥ %.2f; never layers 0-1 or the last):", threshold))
        if spans.isEmpty { lines.append("  none — try a lower --threshold") }
        for s in spans.prefix(top) {
            lines.append(String(format: "  layers %2d-%-2d source %2d  mean cosine %.3f  min %.3f", s.first, s.last, s.source, s.meanCosine, s.minCosine))
        }
        lines.append("least similar to their predecessor:")
        for e in leastSimilarToPredecessor.prefix(top) {
            lines.append(String(format: "  layer %2d vs %2d  cosine %.3f  JSD %.4f nats", e.layer, e.layer - 1, e.cosine, e.jensenShannon))
        }
        return lines.joined(separator: "\n")
    }
}
