import ArgumentParser
import LayerShare

/// How tokens are drawn, shared by `generate` and `serve` (whose requests may override them), so the
/// same settings and seed give the same text from both.
struct SamplingOptions: ParsableArguments {
    @Option(name: [.customLong("temperature"), .customLong("temp")], parsing: .unconditional, help: "Sampling temperature; 0 = greedy.")
    var temperature: Float = 0.7

    @Option(name: .customLong("top-k"), parsing: .unconditional, help: "Keep only the K most likely tokens (0 = off).")
    var topK = 40

    @Option(name: .customLong("top-p"), parsing: .unconditional, help: "Nucleus sampling: keep the smallest set of tokens with this total probability.")
    var topP: Float = 0.95

    @Option(name: .customLong("min-p"), parsing: .unconditional,
            help: "Keep only tokens whose probability (at temperature 1) is at least this fraction of the most likely one's (0 = off).")
    var minP: Float = 0

    @Option(name: .customLong("repeat-penalty"), parsing: .unconditional,
            help: "Divide the logits of tokens seen in the last --repeat-last-n tokens by this (multiply negative ones); 1 = off. Applies to greedy decoding too.")
    var repeatPenalty: Float = 1

    @Option(name: .customLong("repeat-last-n"), parsing: .unconditional, help: "How many of the latest tokens (prompt included) --repeat-penalty looks at.")
    var repeatLastN = 64

    /// A sampler with these settings (checked here, before any slow load).
    func sampler(seed: UInt64) throws -> Sampler {
        try Sampler(temperature: temperature, topK: topK, topP: topP, minP: minP, seed: seed,
                    repeatPenalty: repeatPenalty, repeatLastN: repeatLastN)
    }
}
