import ArgumentParser
import Foundation
import LayerShare

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Write an attention-sharing plan (JSON) for --plan on generate, compare, logits and ppl.",
        subcommands: [PlanSharedAttentionCommand.self, PlanHeadShareCommand.self]
    )
}

struct PlanSharedAttentionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sa",
        abstract: "Shared Attention plan: spans of layers that reuse the softmax probabilities of the layer before the span.",
        discussion: """
        Spans come from --spans (by hand, e.g. 14-16,23-26: layers 14..16 reuse layer 13, 23..26 reuse 22; a source may not itself be shared, so 23-26,27-28 is rejected — write 23-28), or are proposed from an analysis (--analysis FILE, or --file TEXT to analyse first): maximal spans whose layers all have attention cosine ≥ --threshold with the layer before the span, never layers 0-1 or the last layer. With --max-ppl-increase, proposed spans are accepted greedily (best first, shortened when needed) only while perplexity on held-out text stays within the budget; held-out text is --calibration-file, skipping the tokens the analysis used when it is the analysed file itself.
        """
    )

    @Option(help: "Model: a .gguf file or a Hugging Face directory. Default: the bootstrap model.")
    var model: String?

    @Option(help: "Backend for perplexity checks: cpu or vulkan.")
    var backend: BackendKind = .cpu

    @Option(help: "Vulkan device index or name fragment.")
    var device: String?

    @Option(help: "similarity.json written by `layershare analyze`.")
    var analysis: String?

    @Option(help: "Calibration text to analyse now (instead of --analysis).")
    var file: String?

    @Option(parsing: .unconditional, help: "With --file: tokens per analysis sequence.")
    var tokens = 256

    @Option(parsing: .unconditional, help: "With --file: analysis sequences.")
    var sequences = 4

    @Option(help: "Shared spans by hand, FIRST-LAST[,FIRST-LAST...]; each reuses layer FIRST-1.")
    var spans: String?

    @Option(parsing: .unconditional, help: "Cosine with the source layer every layer of a proposed span must reach.")
    var threshold = SharingDefaults.threshold

    @Option(name: .customLong("min-span"), parsing: .unconditional, help: "Fewest layers in a proposed span.")
    var minSpan = 2

    @Option(name: .customLong("max-ppl-increase"), parsing: .unconditional, help: "Perplexity budget in percent over the unshared model.")
    var maxPplIncrease: Double?

    @Option(name: .customLong("calibration-file"), help: "Held-out text for the perplexity budget (default: the analysed file, after the analysed tokens).")
    var calibrationFile: String?

    @Option(name: .customLong("calibration-tokens"), parsing: .unconditional, help: "Held-out tokens scored per perplexity check.")
    var calibrationTokens = 1024

    @Option(parsing: .unconditional, help: "Perplexity window (tokens).")
    var window = 512

    @Option(name: .customLong("max-evaluations"), parsing: .unconditional, help: "Most perplexity checks after the baseline.")
    var maxEvaluations = 12

    @Option(name: [.customShort("c"), .customLong("ctx-size"), .customLong("ctx")], parsing: .unconditional,
            help: "Context length at which the K-cache saving is reported in MiB (default: the model's training context).")
    var ctx: Int?

    @Option(help: "Output plan path.")
    var output = "plan.json"

    func run() throws {
        try requirePositive(minSpan, "--min-span")
        try requireNonNegative(maxEvaluations, "--max-evaluations")
        try requirePositive(calibrationTokens, "--calibration-tokens")
        guard threshold.isFinite else { throw ValidationError("--threshold must be a finite number, got \(threshold)") }
        if let maxPplIncrease, !(maxPplIncrease.isFinite && maxPplIncrease >= 0) {
            throw ValidationError("--max-ppl-increase must be a finite number ≥ 0, got \(maxPplIncrease)")
        }
        if maxPplIncrease != nil { _ = try PerplexityEvaluation(window: window) }  // before the analysis, not after
        if let ctx { try requirePositive(ctx, "--ctx") }
        let model = try loadModel(model)
        let plan: SharingPlan
        var measured = false
        if let spans {
            let ranges = try SpanProposal.parse(spans)
            plan = try SharingPlan.sharedAttention(spans: ranges, model: model, notes: "hand-written spans \(spans)")
        } else {
            plan = try propose(model: model)
            measured = maxPplIncrease != nil
        }
        try plan.write(to: output)
        print(plan.summary())
        if let line = plan.kvCacheSavingsLine(context: ctx ?? model.hyper.contextLength) { print(line) }
        if !measured, let warning = plan.unmeasuredCostWarning(planPath: output) { note(warning) }
        print("wrote \(output)")
    }

    private func propose(model: LoadedModel) throws -> SharingPlan {
        let similarity: AttentionSimilarity
        var analysedText: String?
        if let analysis {
            similarity = try AttentionSimilarity.load(path: analysis)
            let identity = try ModelIdentity.of(model)
            guard similarity.model.weightsHash == identity.weightsHash else {
                throw ValidationError("\(analysis) was made for weights \(similarity.model.weightsHash ?? "?"), this model has \(identity.weightsHash ?? "?")")
            }
        } else if let file {
            let text = try readTextFile(file, "--file")
            analysedText = text
            note("analysing attention on \(sequences) × \(tokens) tokens of \(file) [cpu]")
            similarity = try AttentionAnalysis.run(model: model, text: text, fileLabel: file, tokensPerSequence: tokens,
                                                   sequences: sequences, progress: note)
        } else {
            throw ValidationError("give --spans, --analysis FILE or --file TEXT")
        }
        let candidates = similarity.candidateSpans(threshold: threshold, minLength: minSpan)
        note("\(candidates.count) candidate span(s) with cosine ≥ \(threshold): "
             + candidates.map { String(format: "%d-%d (%.3f)", $0.first, $0.last, $0.meanCosine) }.joined(separator: ", "))
        guard let budget = maxPplIncrease else {
            let chosen = SpanProposal.nonOverlapping(candidates)
            return try SharingPlan.sharedAttention(spans: chosen.map(\.range), model: model,
                                                   notes: "proposed from \(similarity.settings.file) analysis, cosine threshold \(threshold)")
        }
        let heldOut = try heldOutTokens(model: model, similarity: similarity, analysedText: analysedText)
        var options = RunnerOptions()
        options.backend = backend
        options.device = device
        note("perplexity budget +\(budget)% on \(heldOut.count) held-out tokens, window \(window) [\(backend.rawValue)]")
        let result = try SpanProposal.withPerplexityBudget(
            model: model, candidates: candidates, tokens: heldOut, window: window, maxIncreasePercent: budget,
            minLength: minSpan, maxEvaluations: maxEvaluations, options: options, log: note)
        let increase = (result.perplexity / result.baseline - 1) * 100
        print(String(format: "baseline perplexity %.4f, with plan %.4f (%+.2f%%, budget +%.2f%%)",
                     result.baseline, result.perplexity, increase, budget))
        if increase > 1 {
            note(String(format: "warning: this plan costs %+.2f%% perplexity on the held-out text (within the budget you set)", increase))
        }
        return try SharingPlan.sharedAttention(
            spans: result.spans, model: model,
            notes: String(format: "proposed from %@ analysis (cosine threshold %.2f), perplexity %.4f vs baseline %.4f on %d held-out tokens (budget +%.2f%%)",
                          similarity.settings.file, threshold, result.perplexity, result.baseline, heldOut.count, budget))
    }

    /// Held-out text: --calibration-file, minus the tokens the analysis used when it is the analysed file.
    private func heldOutTokens(model: LoadedModel, similarity: AttentionSimilarity, analysedText: String?) throws -> [Int] {
        let path = calibrationFile ?? similarity.settings.file
        let text = try readTextFile(path, "held-out text (--calibration-file)")
        var ids = model.promptTokens(text, parseSpecial: false)
        let sameFile = URL(fileURLWithPath: path).standardizedFileURL == URL(fileURLWithPath: similarity.settings.file).standardizedFileURL
        if sameFile { ids = Array(ids.dropFirst(similarity.settings.tokensUsed)) }
        ids = Array(ids.prefix(calibrationTokens))
        guard ids.count >= 2 else {
            throw ValidationError("\(path) has no held-out text left after the \(similarity.settings.tokensUsed) analysed tokens; give --calibration-file")
        }
        return ids
    }
}
