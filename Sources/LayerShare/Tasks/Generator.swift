import Foundation
import ModelFormats

/// Timing and counts of one generation.
public struct GenerationStats: Sendable {
    public var promptTokens = 0
    public var generatedTokens = 0
    /// Generation stopped because the context was full (not at a stop token or `maxTokens`).
    public var reachedContextEnd = false
    public var prefillSeconds = 0.0
    public var decodeSeconds = 0.0
    public var prefillTokensPerSecond: Double { prefillSeconds > 0 ? Double(promptTokens) / prefillSeconds : 0 }
    /// Decode rate over the tokens produced after the first (the first comes from prefill's logits).
    public var decodeTokensPerSecond: Double { decodeSeconds > 0 ? Double(max(generatedTokens - 1, 0)) / decodeSeconds : 0 }
}

/// A prompt that does not fit the free part of the context (one position is kept for a reply).
public struct ContextFullError: Error, CustomStringConvertible {
    public let promptTokens: Int
    public let free: Int
    public let capacity: Int
    public var description: String {
        "prompt of \(promptTokens) tokens does not fit the context (\(free) of \(capacity) positions free; raise --ctx or shorten the prompt)"
    }
}

/// Autoregressive generation on a runner: prefill the prompt, then sample one token per step.
public final class Generator {
    public let runner: ModelRunner
    public let tokenizer: Tokenizer
    /// Ids that end generation: EOS, and the end-of-turn tokens of the chat template families
    /// (<|im_end|>, <|eot_id|>, <end_of_turn>) that the vocabulary has.
    public var stopIds: Set<Int>

    public init(runner: ModelRunner, tokenizer: Tokenizer) {
        self.runner = runner
        self.tokenizer = tokenizer
        var stops: Set<Int> = []
        if let eos = tokenizer.eosId { stops.insert(eos) }
        for family in ChatTemplate.Family.allCases {
            if let end = tokenizer.tokenId(for: ChatTemplate(family: family).endOfTurn) { stops.insert(end) }
        }
        stopIds = stops
    }

    /// Feeds `promptTokens` after what is already cached, then generates up to `maxTokens`.
    /// `onToken` receives each id and the text it completes (may be empty mid-character);
    /// returning false stops early.
    @discardableResult
    public func generate(promptTokens: [Int], maxTokens: Int, sampler: inout Sampler,
                         onToken: (Int, String) -> Bool = { _, _ in true }) throws -> (tokens: [Int], stats: GenerationStats) {
        guard !promptTokens.isEmpty else { throw ModelLoadError("the prompt is empty: nothing to condition on") }
        guard maxTokens >= 0 else { throw ModelLoadError("--max-tokens must not be negative, got \(maxTokens)") }
        guard promptTokens.count < runner.capacity - runner.position else {
            throw ContextFullError(promptTokens: promptTokens.count, free: runner.capacity - runner.position, capacity: runner.capacity)
        }
        var stats = GenerationStats()
        stats.promptTokens = promptTokens.count
        var decoder = tokenizer.makeStreamingDecoder()
        let t0 = DispatchTime.now().uptimeNanoseconds
        var logits = try runner.forward(promptTokens, logits: .last)
        try FiniteLogits.check(logits, vocab: logits.count, firstPosition: runner.position - 1) { _ in
            "the last prompt token"
        }
        let t1 = DispatchTime.now().uptimeNanoseconds
        stats.prefillSeconds = Double(t1 - t0) / 1e9
        var produced: [Int] = []
        let room = runner.capacity - runner.position
        let limit = min(maxTokens, room)
        // Rows past the tokenizer's last id are padding of the embedding table: never sampled.
        let sampled = min(tokenizer.vocabSize, logits.count)
        while produced.count < limit {
            if sampler.repeatPenalty != 1 { sampler.penalizeRepeats(&logits, history: promptTokens + produced) }
            let next = logits.withUnsafeBufferPointer { sampler.sample(logits: UnsafeBufferPointer(rebasing: $0[0..<sampled])) }
            produced.append(next)
            stats.generatedTokens = produced.count
            if stopIds.contains(next) { break }
            let text = try decoder.append(next)
            if !onToken(next, text) { break }
            if produced.count == limit {
                stats.reachedContextEnd = limit == room && limit < maxTokens
                break
            }
            logits = try runner.forward([next], logits: .last)
            try FiniteLogits.check(logits, vocab: logits.count, firstPosition: runner.position - 1) { _ in
                "generated token \(produced.count)"
            }
        }
        let tail = decoder.finish()
        if !tail.isEmpty { _ = onToken(-1, tail) }
        stats.decodeSeconds = Double(DispatchTime.now().uptimeNanoseconds - t1) / 1e9
        return (produced, stats)
    }
}
