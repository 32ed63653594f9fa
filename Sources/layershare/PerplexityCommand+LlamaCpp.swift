import ArgumentParser
import Foundation
import LayerShare

extension PerplexityCommand {
    /// `--method llama.cpp`: llama-perplexity's chunks and scoring, and its way of printing them.
    func runLlamaCpp() throws {
        if stride != nil { throw ValidationError("--stride applies to --method sliding (llama.cpp's chunks never overlap)") }
        if scoreTokens != nil || oldMaxTokens != nil {
            throw ValidationError("--score-tokens applies to --method sliding; with --method llama.cpp, --chunks N scores the first N chunks")
        }
        let text = try readTextFile(file, "--file")
        let model = try options.loadModel()
        let tokenizer = model.tokenizer
        // llama.cpp tokenizes the whole text with BOS in front when the model adds BOS.
        let bos = tokenizer.addBosToken ? tokenizer.bosId : nil
        let tokens = (bos.map { [$0] } ?? []) + tokenizer.encode(text, parseSpecial: false)
        let plan: LlamaCppChunks
        do { plan = try LlamaCppChunks(tokenCount: tokens.count, window: window, maxChunks: chunks) } catch let e as ModelLoadError {
            throw ValidationError(e.description)
        }
        let runner = try makeRunner(model)
        note("scoring \(file) as llama-perplexity does: \(tokens.count) tokens, \(plan.count) chunks of \(plan.window), "
             + "\(plan.scoredPerChunk) scored per chunk (positions \(plan.firstScored)…\(plan.window - 2)), BOS "
             + (bos == nil ? "not added" : "first in each chunk") + " [\(runner.backendName)]")
        let result = try LlamaCppPerplexity.run(runner, tokens: tokens, chunks: plan, bos: bos) { chunk, sofar in
            FileHandle.standardError.write(Data(String(format: "[%d]%.4f,", chunk, sofar.value).utf8))
        }
        FileHandle.standardError.write(Data("\n".utf8))
        if let error = result.standardError {
            print(String(format: "Final estimate: PPL = %.4f +/- %.5f", result.value, error))
        }
        print(String(format: "perplexity: %.4f (%d tokens scored in %d chunks of %d, mean NLL %.6f nats)",
                     result.value, result.count, plan.count, plan.window, result.meanNegativeLogLikelihood))
    }
}
