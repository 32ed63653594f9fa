import ArgumentParser
import Foundation
import LayerShare

struct ProfileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile",
        abstract: "Time every GPU dispatch of a prefill and N decode steps; print per-kernel and per-layer tables.",
        discussion: """
        GB/s and GFLOP/s are computed from the bytes each kernel must move and the operations it must do (weights, activations, KV cache), not from hardware counters. Host overhead is wall time not covered by GPU work (recording, submission, synchronisation). --trace writes a Chrome trace-event JSON (open in Perfetto or chrome://tracing).

        On Mesa's lavapipe with its worker threads, every timestamp adds tens of µs to each dispatch, so the step times here exceed real decode speed; LP_NUM_THREADS=0 (dispatches run inline, timestamps nearly free) gives per-kernel times that add up to the work of a step.
        """
    )

    @OptionGroup var options: ModelOptions

    @Option(name: [.customShort("p"), .long], help: "Prompt text, @FILE, or - for standard input.")
    var prompt = "The history of computing is a story of abstraction layered upon abstraction."

    @Option(name: [.customShort("n"), .customLong("max-tokens")], parsing: .unconditional, help: "Tokens to generate (decode steps to time) after the prompt.")
    var maxTokens = 32

    @Option(name: .customLong("tokens"), parsing: .unconditional, help: .hidden)
    var oldTokens: Int?  // the name before -n/--max-tokens

    @Option(help: "Write a Chrome trace-event JSON here.")
    var trace: String?

    @Option(help: "Sharing-plan file to profile instead of the baseline.")
    var plan: String?

    func run() throws {
        guard options.backend == .vulkan else { throw ValidationError("profile times GPU dispatches: use the vulkan backend") }
        let tokens = renamed(maxTokens, old: oldTokens)
        try requireNonNegative(tokens, "--max-tokens")
        let model = try options.loadModel()
        let ids = model.promptTokens(try readPromptText(prompt))
        guard !ids.isEmpty else { throw ValidationError("the prompt encodes to no tokens") }
        var runnerOptions = try options.runnerOptions(model: model)
        runnerOptions.profiling = true
        if let plan { runnerOptions.specs = try loadPlanSpecs(path: plan, model: model) }
        if runnerOptions.context == nil {
            let context = try contextLength(prompt: ids.count, tokens: tokens, option: "--max-tokens")
            runnerOptions.context = context
            runnerOptions.contextLabel = "a context of \(context) (the prompt's \(ids.count) tokens + --max-tokens \(tokens) + 1)"
        }
        let session = try RunnerFactory.makeVulkan(model: model, options: runnerOptions, log: note)
        let profile = try ProfileRun.run(runner: session.runner, backend: session.backend, prompt: ids, steps: tokens)
        if let fallback = profile.fallbackNote { note(fallback) }
        print(profile.report(), terminator: "")
        fflush(stdout)  // keep the tables ahead of the stderr notes below when both go to a terminal
        if let trace {
            try profile.writeTrace(to: URL(fileURLWithPath: trace))
            note(profile.timestampsAvailable ? "trace written to \(trace)" : "trace written to \(trace) (empty: no GPU timestamps)")
        }
    }
}

// Table helpers kept for other commands' use.
func fmt(_ v: Double) -> String { v >= 100 ? String(format: "%.0f", v) : String(format: "%.1f", v) }
func pad(_ s: String, _ n: Int) -> String { s.count >= n ? String(s.prefix(n - 1)) + " " : s + String(repeating: " ", count: n - s.count) }
func lpad(_ s: String, _ n: Int) -> String { s.count >= n ? s : String(repeating: " ", count: n - s.count) + s }
