import ArgumentParser
import Foundation

struct LayerShareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "layershare",
        abstract: "LLM inference on Vulkan compute shaders, with a CPU (OpenBLAS) reference path.",
        discussion: """
        Every model command defaults to the SmolLM2-135M-Instruct GGUF that tools/bootstrap fetches (override with --model or LAYERSHARE_MODEL) and to the Vulkan backend (--backend cpu for the reference).
        """,
        subcommands: [DevicesCommand.self, GenerateCommand.self, CompareCommand.self, LogitsCommand.self,
                      PerplexityCommand.self, ProfileCommand.self, BenchCommand.self, AnalyzeCommand.self, PlanCommand.self]
    )
}

MappedFileFault.install()
do {
    var command = try LayerShareCommand.parseAsRoot()
    try command.run()
} catch {
    LayerShareCommand.exit(withError: readableError(error))
}
