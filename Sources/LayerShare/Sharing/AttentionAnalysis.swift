import Foundation

/// Measures how similar attention is across layers and heads on calibration text (CPU backend):
/// consecutive sequences of `tokensPerSequence` tokens from the start of the text, each run from
/// position 0 so every layer's probabilities are the full causal [n, n] maps.
public enum AttentionAnalysis {
    public static func run(model: LoadedModel, text: String, fileLabel: String, tokensPerSequence: Int, sequences: Int,
                           progress: (String) -> Void = { _ in }) throws -> AttentionSimilarity {
        guard tokensPerSequence >= 2 else { throw ModelLoadError("--tokens must be at least 2, got \(tokensPerSequence)") }
        guard sequences >= 1 else { throw ModelLoadError("--sequences must be at least 1, got \(sequences)") }
        let tokens = model.promptTokens(text, parseSpecial: false)
        guard tokens.count >= 2 else { throw ModelLoadError("the calibration text has \(tokens.count) tokens; need at least 2") }
        // Short texts give one shorter sequence rather than an error.
        let n = min(tokensPerSequence, tokens.count)
        let count = min(sequences, tokens.count / n)
        if count < sequences { progress("note: the text has \(tokens.count) tokens, enough for \(count) sequence(s) of \(n)") }

        let h = model.hyper
        let recorder = try AttentionRecorder(model: model, maxTokens: n)
        var acc = SimilarityAccumulator(layers: h.layers, heads: h.heads)
        let start = Date()
        for s in 0..<count {
            let chunk = Array(tokens[(s * n)..<((s + 1) * n)])
            try recorder.record(chunk) { maps, rows in acc.add(maps: maps, n: rows) }
            progress(String(format: "  sequence %d/%d done (%.1f s)", s + 1, count, Date().timeIntervalSince(start)))
        }

        let adjacent = acc.adjacentHeadCosine
        let matches = adjacent.enumerated().map { (i, scores) -> AttentionSimilarity.HeadMatch in
            let best = scores.map { row in row.indices.max { row[$0] < row[$1] }! }
            let perm = HeadAssignment.maximize(scores)
            return AttentionSimilarity.HeadMatch(layer: i + 1, bestPreviousHead: best, bestCosine: best.enumerated().map { scores[$0][$1] },
                                                 permutation: perm, permutationCosine: perm.enumerated().map { scores[$0][$1] })
        }
        return AttentionSimilarity(
            model: try ModelIdentity.of(model),
            settings: .init(file: fileLabel, tokensPerSequence: n, sequences: count, tokensUsed: n * count),
            cosine: acc.cosine, jensenShannon: acc.jensenShannon, cosineByHead: acc.cosineByHead,
            adjacentHeadCosine: adjacent, headMatches: matches)
    }
}
