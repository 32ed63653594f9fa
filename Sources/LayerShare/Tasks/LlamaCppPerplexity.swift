import Foundation

/// llama-perplexity's way of scoring a text (llama.cpp's perplexity tool), so our number can be put
/// next to published llama.cpp figures: the tokens (with BOS in front when the model adds BOS) are cut
/// into ⌊tokens / window⌋ non-overlapping chunks, the tail that fills no chunk is dropped, each chunk is
/// evaluated from an empty cache with its first token replaced by BOS (when the model adds BOS), and
/// only the second half is scored: the predictions made at positions window/2 … window−2, i.e. of the
/// chunk's tokens window/2+1 … window−1 — window − window/2 − 1 per chunk (255 for 512).
public struct LlamaCppChunks: Equatable, Sendable {
    public let window: Int
    /// Chunks evaluated.
    public let count: Int

    /// `maxChunks` (llama.cpp's `--chunks`) caps the count; like llama-perplexity, at least two
    /// windows of tokens are required.
    public init(tokenCount: Int, window: Int, maxChunks: Int? = nil) throws {
        guard window >= 3 else {
            throw ModelLoadError("--window must be at least 3 for --method llama.cpp (it scores positions window/2 … window−2), got \(window)")
        }
        if let maxChunks, maxChunks < 1 { throw ModelLoadError("--chunks must be at least 1, got \(maxChunks)") }
        // tokenCount < 2·window without the multiplication (no overflow for any window).
        guard tokenCount / 2 >= window else {
            throw ModelLoadError("--method llama.cpp needs at least two windows of tokens (2 × \(window)), as llama-perplexity does; "
                                 + "the text has \(tokenCount)")
        }
        self.window = window
        count = min(tokenCount / window, maxChunks ?? Int.max)
    }

    /// The first position whose prediction is scored.
    public var firstScored: Int { window / 2 }
    public var scoredPerChunk: Int { window - window / 2 - 1 }
    public var totalScored: Int { count * scoredPerChunk }

    /// Indices into the token sequence covered by chunk `i`.
    public func range(ofChunk i: Int) -> Range<Int> { (i * window)..<((i + 1) * window) }

    /// Chunk `i` as evaluated: its first token replaced by `bos` when one is given.
    public func tokens(ofChunk i: Int, in all: [Int], bos: Int?) -> [Int] {
        var chunk = Array(all[range(ofChunk: i)])
        if let bos { chunk[0] = bos }
        return chunk
    }

    /// Context positions of chunk `i` whose logits are scored, each with the index (into the whole
    /// sequence) of the token it predicts.
    public func scored(inChunk i: Int) -> [(position: Int, target: Int)] {
        (firstScored..<(window - 1)).map { ($0, i * window + $0 + 1) }
    }
}

public enum LlamaCppPerplexity {
    /// Scores `tokens` (BOS already in front when the model adds one; `bos` then replaces each chunk's
    /// first token). `progress(chunk, perplexity so far)` is called after every chunk, 1-based.
    public static func run(_ runner: ModelRunner, tokens: [Int], chunks: LlamaCppChunks, bos: Int?,
                           progress: (Int, Perplexity) -> Void = { _, _ in }) throws -> Perplexity {
        guard chunks.window <= runner.capacity else {
            throw ModelLoadError("--window \(chunks.window) exceeds the context length \(runner.capacity) (raise --ctx)")
        }
        let vocab = runner.hyper.vocabSize
        var ppl = Perplexity()
        for i in 0..<chunks.count {
            let start = chunks.range(ofChunk: i).lowerBound
            let targets = Dictionary(uniqueKeysWithValues: chunks.scored(inChunk: i))
            runner.reset()
            var failure: Error?
            try runner.forward(chunks.tokens(ofChunk: i, in: tokens, bos: bos), logits: .all, hidden: nil) { firstRow, rows in
                guard failure == nil else { return }
                do {
                    try FiniteLogits.check(rows, vocab: vocab, firstPosition: firstRow) { "token \(start + firstRow + $0) of the text" }
                } catch { failure = error; return }
                rows.withUnsafeBufferPointer { all in
                    for r in 0..<(rows.count / vocab) {
                        guard let target = targets[firstRow + r] else { continue }
                        ppl.add(logits: UnsafeBufferPointer(rebasing: all[(r * vocab)..<((r + 1) * vocab)]), target: tokens[target])
                    }
                }
            }
            if let failure { throw failure }
            progress(i + 1, ppl)
        }
        return ppl
    }
}
