import ArgumentParser
import Foundation
import LayerShare

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure prefill and decode speed and memory across context lengths and sharing plans.",
        discussion: """
        For each plan (the baseline is always included) and context length: prefill that many tokens of --file, then generate --max-tokens tokens (decode steps) --runs times (median with min–max). --plan FILE and --plans FILE... add configurations: each plan runs next to the baseline. Writes to --output: bench.json (an `environment` object — backend, device, model, source commit, date, steps, runs, text file — and the `results` array), bench.md (a table) and a decode-speed plot (bench.svg, bench.png: medians with min–max bars).
        """
    )

    @OptionGroup var options: ModelOptions

    @Option(parsing: .upToNextOption, help: "Sharing plan files to compare with the baseline.")
    var plans: [String] = []

    @Option(help: "Context lengths, comma-separated.")
    var contexts = "128,512,1024,2048"

    @Option(name: [.customShort("n"), .customLong("max-tokens")], parsing: .unconditional, help: "Tokens to generate (decode steps) per run.")
    var maxTokens = 16

    @Option(name: .customLong("steps"), parsing: .unconditional, help: .hidden)
    var oldSteps: Int?  // the name before -n/--max-tokens

    @Option(parsing: .unconditional, help: "Decode runs per configuration (median is reported).")
    var runs = 3

    @Option(help: "Text whose tokens fill the context.")
    var file = "/usr/share/common-licenses/GPL-3"

    @Option(help: "Output directory.")
    var output = "bench"

    func run() throws {
        let contextList = try contexts.split(separator: ",").map { s -> Int in
            guard let v = Int(s.trimmingCharacters(in: .whitespaces)), v > 0 else { throw ValidationError("bad context length '\(s)'") }
            return v
        }
        guard let maxContext = contextList.max() else { throw ValidationError("--contexts is empty") }
        let steps = renamed(maxTokens, old: oldSteps)
        try requirePositive(steps, "--max-tokens")
        try requirePositive(runs, "--runs")
        let bench = try Benchmark(steps: steps, runs: runs)
        let (capacity, overflow) = maxContext.addingReportingOverflow(steps)
        guard !overflow else { throw ValidationError("--contexts \(maxContext) + --max-tokens \(steps) is too large") }
        let text = try readTextFile(file, "--file")
        let model = try options.loadModel()
        var tokens = model.promptTokens(text, parseSpecial: false)
        guard !tokens.isEmpty else { throw ValidationError("--file \(file) encodes to no tokens") }
        var configurations: [(name: String, specs: [LayerSpec]?)] = [("baseline", nil)]
        // --plan (shared with the other commands) is one more plan to compare, not a replacement of the baseline.
        for path in (options.plan.map { [$0] } ?? []) + plans {
            configurations.append(((path as NSString).lastPathComponent, try loadPlanSpecs(path: path, model: model)))
        }
        var results: [BenchResult] = []
        for config in configurations {
            var runnerOptions = try options.runnerOptions(model: model)
            runnerOptions.specs = config.specs
            runnerOptions.context = capacity
            runnerOptions.contextLabel = "a context of \(capacity) (the largest of --contexts + --max-tokens)"
            let runner: ModelRunner
            var backendForMemory: VulkanBackend?
            if runnerOptions.backend == .vulkan {
                let session = try RunnerFactory.makeVulkan(model: model, options: runnerOptions, log: note)
                runner = session.runner
                backendForMemory = session.backend
            } else {
                runner = try RunnerFactory.make(model: model, options: runnerOptions, log: note)
            }
            // Repeat short texts, now that the runner was built: the context fits in memory.
            while tokens.count < maxContext { tokens += tokens.prefix(maxContext - tokens.count) }
            results += try bench.results(plan: config.name, runner: runner, backend: backendForMemory, tokens: tokens,
                                         contexts: contextList, progress: note)
        }
        let dir = URL(fileURLWithPath: output)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let deviceName = options.backend == .cpu ? "host CPU (OpenBLAS; weights dequantized to float32, device columns not applicable)"
            : (try? VulkanInstance(validation: false).selectDevice(options.device).name) ?? "?"
        let environment = BenchEnvironment(backend: options.backend.rawValue, device: deviceName,
                                           model: (options.modelPath as NSString).lastPathComponent,
                                           decodeSteps: steps, runs: runs, textFile: file)
        try BenchReport.json(results, environment: environment).write(to: dir.appendingPathComponent("bench.json"))
        let header = "Backend \(options.backend.rawValue), device \(deviceName), model \((options.modelPath as NSString).lastPathComponent); \(steps) decode steps × \(runs) runs; KV cache = bytes for the context length (float32 K and V)."
        let markdown = BenchReport.markdown(results, header: header)
        try markdown.write(to: dir.appendingPathComponent("bench.md"), atomically: true, encoding: .utf8)
        let svgURL = dir.appendingPathComponent("bench.svg")
        try BenchReport.svg(results, title: "decode speed vs context (\(options.backend.rawValue))").write(to: svgURL, atomically: true, encoding: .utf8)
        if !BenchReport.renderPNG(svg: svgURL, png: dir.appendingPathComponent("bench.png")) {
            note("note: rsvg-convert not found; wrote bench.svg only (tools/bootstrap installs librsvg2-bin)")
        }
        print(markdown)
        note("results in \(dir.path)/bench.{json,md,svg,png}")
    }
}
