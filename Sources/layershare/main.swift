import ArgumentParser
import Foundation
import LayerShare

struct LayerShareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "layershare",
        abstract: "LLM inference on Vulkan compute shaders, with a CPU (OpenBLAS) reference path.",
        discussion: """
        Every model command defaults to the SmolLM2-135M-Instruct GGUF that tools/bootstrap fetches (override with -m/--model or LAYERSHARE_MODEL) and to the Vulkan backend (--backend cpu for the reference).

        One name per concept: -n/--max-tokens is always the number of tokens to generate (generate; compare's greedy tokens; profile's and bench's decode steps), -p/--prompt the prompt (- reads standard input), -c/--ctx-size (or --ctx) the context length. ppl's tokens to score are --score-tokens. Older spellings (compare/profile --tokens, bench --steps, ppl --max-tokens) still work.
        """,
        version: LayerShareVersion.string,
        subcommands: [DevicesCommand.self, InfoCommand.self, GenerateCommand.self, CompareCommand.self, LogitsCommand.self,
                      PerplexityCommand.self, ProfileCommand.self, BenchCommand.self, AnalyzeCommand.self, PlanCommand.self, CalibrateCommand.self,
                      TokenizeCommand.self, ServeCommand.self]
    )
}

MappedFileFault.install()
do {
    var command = try LayerShareCommand.parseAsRoot()
    try command.run()
} catch {
    LayerShareCommand.exit(withError: readableError(error))
}
