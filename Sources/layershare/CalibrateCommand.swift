import ArgumentParser
import Foundation
import LayerShare

struct CalibrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "calibrate",
        abstract: "Fit a sharing method's parameters on calibration text and write a plan for --plan.",
        subcommands: [CalibrateLiSACommand.self]
    )
}

struct CalibrateLiSACommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lisa",
        abstract: "Fit LiSA layers (LayerShare formulation) and write DIR/lisa.safetensors + DIR/lisa.json.",
        discussion: """
        Runs the unmodified model on the CPU over --sequences windows of --window tokens of --file and records, at --rows random query rows per window, each candidate layer's normed input and true attention log-probabilities and those of the layer before it (teacher forcing). Each LiSA layer's head alignment (R, and the FFN W, b, U, c of width --ffn-width) and low-rank projections (rank --rank per head, rotated at the RoPE frequencies of the pairs with the most energy unless --no-rope-select) are then fitted by Adam on KL(P_true ‖ P_LiSA), starting from the best head permutation.

        Which layers: --layers (e.g. 12-29 or 20,21); else every layer after the first fifth of the depth (--keep-first). Of those, --count N keeps the N with the lowest fitted KL, and --max-ppl-increase P adds layers in order of fitted KL while the perplexity of the last --held-out-tokens tokens of --file (never fitted on) stays within P percent of the unmodified model's, end to end (consecutive LiSA layers feed on each other's approximations). Without either, every candidate is kept.

        --variant alignment fits the head alignment only (f = 0, no low-rank term: "SA with rearranged heads").

        Progress (layer, step, KL, time left) goes to stderr. Fitted layers are checkpointed in --output after each layer: stop with Ctrl-C and rerun the same command to resume; other fitting settings start a new checkpoint, while --layers, --count, --max-ppl-increase and --name only choose among fitted layers (rerun with another --count and --name to write more plans from one fit). Calibrate on text other than what you evaluate on.
        """
    )

    enum Variant: String, ExpressibleByArgument, CaseIterable { case full, alignment }

    @Option(name: [.customShort("m"), .long], help: "Model: a .gguf file or a Hugging Face directory. Default: the bootstrap model.")
    var model: String?

    @Option(help: "Calibration text (e.g. /usr/share/games/fortunes/cookie).")
    var file: String

    @Option(help: "Candidate layers, e.g. 12-29 or 20,21,24-26 (default: all after --keep-first).")
    var layers: String?

    @Option(name: .customLong("keep-first"), parsing: .unconditional, help: "Layers at the start never replaced (default: a fifth of the depth, rounded up).")
    var keepFirst: Int?

    @Option(parsing: .unconditional, help: "Keep the N candidates with the lowest fitted KL.")
    var count: Int?

    @Option(name: .customLong("max-ppl-increase"), parsing: .unconditional, help: "Held-out perplexity budget in percent over the unmodified model.")
    var maxPplIncrease: Double?

    @Option(help: "full (alignment FFN + low rank) or alignment (R only: f = 0, no low-rank term).")
    var variant: Variant = .full

    @Option(parsing: .unconditional, help: "Low-rank width per head, even (default: 2·round(headDim/12); 10 for head dim 64).")
    var rank: Int?

    @Option(name: .customLong("ffn-width"), parsing: .unconditional, help: "Hidden width of the alignment FFN (default: the number of heads).")
    var ffnWidth: Int?

    @Flag(name: .customLong("no-rope-select"), help: "Do not rotate the low-rank pairs (plain low rank, initialised from the same Wq/Wk rows).")
    var noRopeSelect = false

    @Option(name: .customLong("query-init"), parsing: .unconditional, help: "Factor on the initial Wqr (1: the original Wq rows of the selected pairs; 0: start at direct sharing with rearranged heads).")
    var queryInit: Float = 1

    @Option(parsing: .unconditional, help: "Adam steps per layer.")
    var steps = 150

    @Option(name: .customLong("lr"), parsing: .unconditional, help: "Adam step size of the alignment network.")
    var alignmentRate: Float = 1e-2

    @Option(name: .customLong("lowrank-lr"), parsing: .unconditional, help: "Adam step size of the low-rank projections.")
    var lowRankRate: Float = 2e-3

    @Option(parsing: .unconditional, help: "Tokens per calibration window.")
    var window = 512

    @Option(parsing: .unconditional, help: "Calibration windows (spread over the text before the held-out part).")
    var sequences = 12

    @Option(parsing: .unconditional, help: "Query rows sampled per window.")
    var rows = 64

    @Option(name: .customLong("held-out-tokens"), parsing: .unconditional, help: "Tokens at the end of --file kept out of fitting, for the perplexity budget.")
    var heldOutTokens = 2048

    @Option(parsing: .unconditional, help: "Seed of the row sampling and FFN initialisation.")
    var seed: UInt64 = 1

    @Option(help: "Output directory (adapter, plan, checkpoint).")
    var output = "lisa-plan"

    @Option(help: "File name of the plan and adapter in --output: NAME.json and NAME.safetensors.")
    var name = "lisa"

    func validate() throws {
        for (value, name) in [(steps, "--steps"), (window, "--window"), (sequences, "--sequences"), (rows, "--rows")] where value < 1 {
            throw ValidationError("\(name) must be at least 1, got \(value)")
        }
        guard !name.isEmpty, !name.contains("/") else { throw ValidationError("--name must be a plain file name, got '\(name)'") }
        if window > 1 << 16 { throw ValidationError("--window \(window) is too large (at most 65536)") }
        try requireNonNegative(heldOutTokens, "--held-out-tokens")
        if let count { try requirePositive(count, "--count") }
        if let keepFirst { try requirePositive(keepFirst, "--keep-first") }
        if let maxPplIncrease, !(maxPplIncrease >= 0 && maxPplIncrease.isFinite) { throw ValidationError("--max-ppl-increase must be a percentage ≥ 0, got \(maxPplIncrease)") }
        if let rank, rank < 0 || rank % 2 != 0 { throw ValidationError("--rank must be even and ≥ 0, got \(rank)") }
        if let ffnWidth, !(0...4096).contains(ffnWidth) { throw ValidationError("--ffn-width must be in 0...4096, got \(ffnWidth)") }
        if !queryInit.isFinite { throw ValidationError("--query-init must be a finite number, got \(queryInit)") }
        for (rate, name) in [(alignmentRate, "--lr"), (lowRankRate, "--lowrank-lr")] where !(rate > 0 && rate.isFinite) {
            throw ValidationError("\(name) must be positive, got \(rate)")
        }
        if variant == .alignment, (rank ?? 0) != 0 || (ffnWidth ?? 0) != 0 {
            throw ValidationError("--variant alignment fits R only: leave --rank and --ffn-width unset (they are 0)")
        }
    }

    func run() throws {
        let options = ModelOptions.parseOrExit(["--backend", "cpu"] + (model.map { ["-m", $0] } ?? []))
        let text = try readTextFile(file, "--file")
        let model = try options.loadModel()
        let h = model.hyper
        let rank = variant == .alignment ? 0 : self.rank ?? 2 * Int((Double(h.headDim) / 12).rounded())
        if rank > h.headDim { throw ValidationError("--rank \(rank) exceeds the head dimension \(h.headDim)") }
        let ffn = variant == .alignment ? 0 : ffnWidth ?? h.heads
        let first = keepFirst ?? (h.layers + 4) / 5
        let candidates = try layers.map { try Self.parseLayers($0, layerCount: h.layers) } ?? Array(max(1, first)..<h.layers)
        guard !candidates.isEmpty else { throw ValidationError("no candidate layers (--keep-first \(first) of \(h.layers) layers)") }
        let tokens = model.tokenizer.encode(text, parseSpecial: false)
        let (needed, overflow) = window.addingReportingOverflow(heldOutTokens)
        guard !overflow, tokens.count >= needed else {
            throw ValidationError("--file has \(tokens.count) tokens; need at least --window \(window) + --held-out-tokens \(heldOutTokens)")
        }
        if maxPplIncrease != nil, heldOutTokens < 2 { throw ValidationError("--max-ppl-increase needs --held-out-tokens ≥ 2") }
        var settings = LiSACalibration.Settings(
            fitTokens: Array(tokens.dropLast(heldOutTokens)), heldOutTokens: Array(tokens.suffix(heldOutTokens)),
            textName: URL(fileURLWithPath: file).lastPathComponent, candidates: candidates, variant: variant.rawValue,
            initialization: .init(rank: rank, ffnWidth: ffn, ropeSelect: !noRopeSelect, seed: seed, queryInitScale: queryInit),
            fit: .init(steps: steps, alignmentRate: alignmentRate, lowRankRate: lowRankRate), outputDirectory: output)
        settings.window = window; settings.sequences = sequences; settings.rowsPerSequence = rows; settings.seed = seed
        settings.count = count; settings.maxPerplexityIncrease = maxPplIncrease; settings.name = name
        note("LiSA (LayerShare formulation), \(variant.rawValue): rank \(rank), FFN width \(ffn), rope_sel \(noRopeSelect ? "off" : "on"), "
             + "\(candidates.count) candidate layer(s), \(tokens.count) tokens of \(file) (\(heldOutTokens) held out)")
        // Ctrl-C sets a flag the fit polls between steps: the layer in progress is dropped, finished ones stay checkpointed.
        ChatInterrupt.install(restartingCalls: true)
        let result = try LiSACalibration(model: model, settings: settings, log: note).run(shouldStop: { ChatInterrupt.isSet })
        for l in result.layers { note(String(format: "  layer %d: fitted KL %.5f", l, result.fittedKL[l] ?? .nan)) }
        print("wrote \(result.planPath) (\(result.layers.count) LiSA layer(s): \(result.layers.map(String.init).joined(separator: ","))) and \(result.adapterPath)")
        if let b = result.baselinePerplexity, let p = result.perplexity {
            print(String(format: "held-out perplexity %.4f → %.4f (%+.2f%%)", b, p, (p / b - 1) * 100))
        }
    }

    /// "12-29" or "20,21,24-26" → sorted distinct layers, each in 1..<layerCount.
    static func parseLayers(_ spec: String, layerCount n: Int) throws -> [Int] {
        var out = Set<Int>()
        for part in spec.split(separator: ",") {
            let ends = part.split(separator: "-", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard (1...2).contains(ends.count), let a = ends.first!, let b = ends.last! , a <= b else {
                throw ValidationError("--layers: '\(part)' is not a layer or FIRST-LAST range")
            }
            guard a >= 1, b < n else { throw ValidationError("--layers: \(part) is outside 1..<\(n) (layer 0 cannot be LiSA)") }
            out.formUnion(a...b)
        }
        guard !out.isEmpty else { throw ValidationError("--layers is empty") }
        return out.sorted()
    }
}
