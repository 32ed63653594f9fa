import ArgumentParser
import Foundation
import LayerShare

struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Run the Vulkan and CPU paths on the same tokens and report where they differ, layer by layer.",
        discussion: """
        Errors are max |vulkan − cpu| (absolute) and that divided by max |cpu| (relative), for the hidden state after each block and for the final logits. Then the CPU's greedy continuation is fed to both and their top-1 tokens compared. Exits non-zero when a relative error exceeds --tolerance or a top-1 token differs.
        """
    )

    @OptionGroup var options: ModelOptions

    @Option(name: [.customShort("p"), .long], help: "Prompt text, @FILE, or - for standard input.")
    var prompt = "The capital of France is Paris. The capital of Germany is"

    @Option(name: [.customShort("n"), .customLong("max-tokens")], parsing: .unconditional, help: "Greedy tokens to generate and compare after the prompt.")
    var maxTokens = 32

    @Option(name: .customLong("tokens"), parsing: .unconditional, help: .hidden)
    var oldTokens: Int?  // the name before -n/--max-tokens

    @Option(parsing: .unconditional, help: "Largest acceptable relative error (float32 accumulation-order differences are ~1e-5).")
    var tolerance = 1e-3

    func run() throws {
        let tokens = renamed(maxTokens, old: oldTokens)
        try requireNonNegative(tokens, "--max-tokens")
        guard tolerance.isFinite, tolerance >= 0 else { throw ValidationError("--tolerance must be a finite number ≥ 0, got \(tolerance)") }
        let model = try options.loadModel()
        let ids = model.promptTokens(try readPromptText(prompt))
        guard !ids.isEmpty else { throw ValidationError("the prompt encodes to no tokens") }
        var runnerOptions = try options.runnerOptions(model: model, backend: .vulkan)
        if runnerOptions.context == nil {
            let context = try contextLength(prompt: ids.count, tokens: tokens, option: "--max-tokens")
            runnerOptions.context = context
            runnerOptions.contextLabel = "a context of \(context) (the prompt's \(ids.count) tokens + --max-tokens \(tokens) + 1)"
        }
        let gpu = try RunnerFactory.make(model: model, options: runnerOptions, log: note)
        runnerOptions.backend = .cpu
        let cpu = try RunnerFactory.make(model: model, options: runnerOptions, log: note)
        note("comparing \(gpu.backendName) against \(cpu.backendName) on \(ids.count) prompt tokens")
        let report = try BackendComparison.run(test: gpu, reference: cpu, prompt: ids, greedyTokens: tokens)
        print("tensor        max abs err   max rel err")
        var failed = false
        for d in report.layers + [report.logits!] {
            let flag = d.maxRelative > tolerance ? "  <-- exceeds \(tolerance)" : ""
            if !flag.isEmpty { failed = true }
            print(String(format: "%-12@  %11.3e   %11.3e%@", d.name as NSString, d.maxAbsolute, d.maxRelative, flag as NSString))
        }
        let (gpuBad, cpuBad) = report.firstNonFiniteLayer
        if gpuBad != nil || cpuBad != nil {
            failed = true
            func place(_ l: Int?) -> String { l.map { "layer \($0)" } ?? "none" }
            print("first non-finite hidden state: \(place(gpuBad)) on \(gpu.backendName), \(place(cpuBad)) on \(cpu.backendName)")
        }
        print(String(format: "greedy top-1 agreement: %d/%d (%.1f%%)%@", report.greedyAgreements, report.greedySteps, report.agreement * 100,
                     report.firstDisagreement.map { ", first difference at step \($0)" as NSString } ?? ("" as NSString)))
        if report.agreement < 1 { failed = true }
        if failed { throw ExitCode(1) }
    }
}
