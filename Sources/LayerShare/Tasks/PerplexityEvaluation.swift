import Foundation

/// Perplexity of a token sequence with a sliding window: each window starts from an empty cache;
/// the first window scores every token after its first, later windows (advanced by `stride`) score
/// only the tokens not scored before, so each prediction sees at least `window − stride` tokens of context.
public struct PerplexityEvaluation {
    public let window: Int
    public let stride: Int
    /// A BOS id that replaces the first token of every window (as llama.cpp's perplexity does for
    /// models that expect one, e.g. Gemma); that token is context only, never scored. nil: none.
    public var beginning: Int?

    public init(window: Int, stride: Int? = nil) throws {
        guard window >= 2 else { throw ModelLoadError("--window must be at least 2, got \(window)") }
        let s = stride ?? window
        guard s >= 1, s <= window else { throw ModelLoadError("--stride must be in 1...\(window), got \(s)") }
        self.window = window
        self.stride = s
    }

    /// Returns the accumulated perplexity. `progress(scored, total)` is called after every window.
    public func run(_ runner: ModelRunner, tokens: [Int], progress: (Int, Int) -> Void = { _, _ in }) throws -> Perplexity {
        guard tokens.count >= 2 else { throw ModelLoadError("need at least 2 tokens for perplexity, got \(tokens.count)") }
        guard window <= runner.capacity else {
            throw ModelLoadError("--window \(window) exceeds the context length \(runner.capacity) (raise --ctx)")
        }
        var ppl = Perplexity()
        let total = tokens.count - 1
        var scoredUpTo = 0  // tokens[1...scoredUpTo] already scored
        var begin = 0
        while scoredUpTo < total {
            let end = min(begin + window, tokens.count)
            var chunk = Array(tokens[begin..<end])
            if let beginning { chunk[0] = beginning }
            runner.reset()
            let vocab = runner.hyper.vocabSize
            // Row i of the window predicts tokens[begin + i + 1].
            var failure: Error?
            try runner.forward(chunk, logits: .all, hidden: nil) { firstRow, rows in
                guard failure == nil else { return }
                let n = rows.count / vocab
                do {
                    try FiniteLogits.check(rows, vocab: vocab, firstPosition: firstRow) { "token \(begin + firstRow + $0) of the text" }
                } catch { failure = error; return }
                rows.withUnsafeBufferPointer { all in
                    for r in 0..<n {
                        let target = begin + firstRow + r + 1
                        guard target < end, target > scoredUpTo else { continue }
                        ppl.add(logits: UnsafeBufferPointer(rebasing: all[(r * vocab)..<((r + 1) * vocab)]), target: tokens[target])
                    }
                }
            }
            if let failure { throw failure }
            scoredUpTo = end - 1
            progress(scoredUpTo, total)
            if end == tokens.count { break }
            begin += stride
        }
        return ppl
    }
}
