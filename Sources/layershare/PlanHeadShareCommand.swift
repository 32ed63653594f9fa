import ArgumentParser
import Foundation
import LayerShare

struct PlanHeadShareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "headshare",
        abstract: "Head-wise sharing plan: KV groups that read the weights of the most similar group of an earlier layer.",
        discussion: """
        The unit of sharing is one KV group of one layer: its query heads' rows of attn_q, its KV head's rows of attn_k and attn_v, and the matching columns of attn_output (with one query head per KV head, one head, as in the paper). Every unit of layers 1 and later is compared with every unit of every earlier layer by the cosine of its descriptor, the rows --strategy names dequantized to float32 and concatenated (qk, the paper's default: Q rows then K rows). Each target's best match is ranked globally and the top int(--rate × all units) are shared, layer 0 counted in the denominator although it is never a target.

        --chains decides what a selected unit that is itself another's best match does. original (default): every shared unit reads the root of its chain, a unit that keeps its own weights, so every selected unit is shared. authors: the reference code's behaviour: a selected unit that another selected unit reads keeps its own weights, and its reader reads them, so fewer units end up shared.

        --spans FIRST-LAST[,FIRST-LAST...] adds Shared Attention spans to the same plan (each reuses layer FIRST-1, as in `plan sa --spans`); matching ignores them, but the weight bytes saved do not count Q/K rows of layers inside a span, which load none.

        Prints the range of best-match cosines, the threshold (cosine of the last unit selected), the shared units per layer with the unit each reads, and the attention weight bytes no longer stored, in the tensors' stored types.
        """
    )

    @Option(help: "Model: a .gguf file or a Hugging Face directory. Default: the bootstrap model.")
    var model: String?

    @Option(parsing: .unconditional, help: "Share rate: shared units / all units (layers × KV groups), between 0 and 1.")
    var rate: Double

    @Option(help: "Rows compared: qk, q, k, v or qkv.")
    var strategy: HeadShareStrategy = .qk

    @Option(help: "Chain policy: original or authors.")
    var chains: HeadShareChains = .original

    @Option(help: "Shared Attention spans to combine, FIRST-LAST[,FIRST-LAST...]; each reuses layer FIRST-1.")
    var spans: String?

    @Option(help: "Output plan path.")
    var output = "plan.json"

    func validate() throws {
        guard rate.isFinite, (0...1).contains(rate) else {
            throw ValidationError("--rate must be between 0 and 1 (the fraction of all units to share), got \(rate)")
        }
    }

    func run() throws {
        let ranges = try spans.map(SpanProposal.parse) ?? []
        let model = try loadModel(model)
        note("matching \(model.hyper.layers * model.hyper.kvHeads) units by \(strategy.rawValue) cosine [cpu, BLAS]")
        let progress = ProgressLine()
        let matches = try HeadShareMatcher.match(weights: model.weights, strategy: strategy) { progress.show($0.rawValue, $1, $2) }
        let selection = try HeadShareSelection(matches: matches, rate: rate, chains: chains)
        selection.reportLines().forEach { print($0) }
        let plan = try SharingPlan.headShare(
            units: selection.units, strategy: strategy, rate: rate, chains: chains, spans: ranges, model: model,
            notes: "plan headshare --rate \(rate) --strategy \(strategy.rawValue) --chains \(chains.rawValue)"
                + (spans.map { " --spans \($0)" } ?? ""))
        try plan.write(to: output)
        print(plan.summary(weights: model.weights))
        print("wrote \(output)")
    }
}

extension HeadShareStrategy: ExpressibleByArgument {}
extension HeadShareChains: ExpressibleByArgument {}

/// Progress of a long step on standard error: rewritten in place on a terminal, else one line per step.
final class ProgressLine {
    private let terminal = isatty(STDERR_FILENO) != 0

    func show(_ phase: String, _ done: Int, _ total: Int) {
        if terminal {
            FileHandle.standardError.write(Data("\r\(phase) \(done)/\(total)\(done == total ? "\n" : "")".utf8))
        } else if done == total {
            note("\(phase) \(done)/\(total)")
        }
    }
}
