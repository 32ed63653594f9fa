import ArgumentParser
import Foundation
import LayerShare

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate text from a prompt, streaming it as it is produced.",
        discussion: """
        Statistics (prompt and generated token counts, prefill and decode tokens/s) go to stderr. With --chat the prompt is wrapped in the model's ChatML template; --chat without --prompt starts an interactive session (one user turn per line, empty line or EOF ends it). Without --chat, the prompt comes from --prompt (-p - reads standard input) or, when there is none and standard input is not a terminal, from standard input.

        Sampling, in llama.cpp's order: --repeat-penalty on the logits, then (unless --temperature is 0, greedy) top-k, top-p and min-p filters and a draw at the temperature. --stop ends generation as soon as the output contains the text; the text itself is not printed.

        Short options follow llama.cpp: -m/--model, -p/--prompt, -n/--max-tokens, -c/--ctx-size (--ctx), --temp (--temperature).
        """
    )

    @OptionGroup var options: ModelOptions

    @Option(name: [.customShort("p"), .long],
            help: "Prompt text, @FILE to read it from a file, or - for standard input (also read when piped and no --prompt is given).")
    var prompt: String?

    @Option(name: [.customShort("n"), .customLong("max-tokens")], parsing: .unconditional, help: "Maximum number of tokens to generate.")
    var maxTokens = 128

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

    @Option(help: "Stop when the output contains this text, which is not printed (repeatable).")
    var stop: [String] = []

    @Option(parsing: .unconditional, help: "Random seed for sampling (default: time-based).")
    var seed: UInt64?

    @Flag(name: .customLong("ignore-eos"), help: "Keep generating past end-of-sequence tokens (for speed and memory runs).")
    var ignoreEOS = false

    @Flag(help: "Apply the model's chat template (ChatML).")
    var chat = false

    @Option(help: "System prompt for --chat (default: the model template's own).")
    var system: String?

    func run() throws {
        try requireNonNegative(maxTokens, "--max-tokens")
        let seed = self.seed ?? UInt64(Date().timeIntervalSince1970 * 1000)
        var sampler = try Sampler(temperature: temperature, topK: topK, topP: topP, minP: minP, seed: seed,
                                  repeatPenalty: repeatPenalty, repeatLastN: repeatLastN)  // before the slow load
        let model = try options.loadModel()
        let runner = try RunnerFactory.make(model: model, options: try options.runnerOptions(model: model), log: note)
        note("[\(runner.backendName), context \(runner.capacity), weights \(formatBytes(runner.weightBytes)), KV cache \(formatBytes(runner.kvCacheBytes))]")
        if model.paddedVocabulary > 0 {
            note("note: the embedding table has \(model.paddedVocabulary) rows past the tokenizer's \(model.tokenizer.vocabSize) tokens (padding); they are never sampled")
        }
        let generator = Generator(runner: runner, tokenizer: model.tokenizer)
        if ignoreEOS { generator.stopIds = [] }
        var template = model.chatTemplate
        if let system { template.defaultSystemPrompt = system }

        func turn(_ text: String) throws -> [Int] {
            var watch = StopText(stop)
            let (tokens, stats) = try generator.generate(promptTokens: model.promptTokens(text), maxTokens: maxTokens, sampler: &sampler) { _, piece in
                FileHandle.standardOutput.write(Data(watch.append(piece).utf8))
                return !watch.stopped
            }
            FileHandle.standardOutput.write(Data(watch.finish().utf8))
            FileHandle.standardOutput.write(Data("\n".utf8))
            note(String(format: "prompt tokens: %d, generated tokens: %d, prefill: %.1f tok/s, decode: %.1f tok/s",
                        stats.promptTokens, stats.generatedTokens, stats.prefillTokensPerSecond, stats.decodeTokensPerSecond))
            if stats.reachedContextEnd {
                note("note: stopped at the end of the context (\(runner.capacity) tokens) after \(stats.generatedTokens) of --max-tokens \(maxTokens); raise --ctx for longer output"
                     + (chat && prompt == nil ? " (the next message starts a new conversation)" : ""))
            }
            if let memory = runner.deviceMemory {
                note("device memory: \(memory.current) bytes allocated, peak \(memory.peak)")
            }
            return tokens
        }

        if !chat {
            guard let text = try promptText() else {
                throw ValidationError("--prompt is required (or pipe the prompt in, or use --chat for an interactive session)")
            }
            _ = try turn(text)
            return
        }
        var messages: [(role: String, content: String)] = []
        if let system { messages.append((role: "system", content: system)) }
        if let prompt {
            messages.append((role: "user", content: try readPromptText(prompt)))
            _ = try turn(template.render(messages: messages, addGenerationPrompt: true))
            return
        }
        try interactive(generator: generator, template: template, system: messages, turn: turn)
    }

    /// --prompt's text; without it, piped standard input (a terminal is never waited on; empty input is no prompt).
    private func promptText() throws -> String? {
        if let prompt { return try readPromptText(prompt) }
        guard standardInputIsPiped else { return nil }
        let text = readStandardInput()
        return text.isEmpty ? nil : text
    }

    /// One user turn per line; the KV cache is kept and only each new turn is fed. When a turn does
    /// not fit what is left of the context, the conversation restarts from an empty cache with that turn.
    private func interactive(generator: Generator, template: ChatTemplate, system: [(role: String, content: String)],
                             turn: (String) throws -> [Int]) throws {
        var messages = system
        var rendered = ""
        note("interactive chat: type a message and press Enter; an empty line or EOF ends the session")
        while true {
            FileHandle.standardError.write(Data("> ".utf8))
            guard let line = readLine(), !line.isEmpty else { break }
            messages.append((role: "user", content: line))
            var full = template.render(messages: messages, addGenerationPrompt: true)
            let reply: [Int]
            do {
                reply = try turn(String(full.dropFirst(rendered.count)))
            } catch let e as ContextFullError where !rendered.isEmpty {
                note("note: the context is full (\(e.free) of \(e.capacity) positions free, this turn needs \(e.promptTokens)): "
                     + "starting a new conversation with this message; earlier turns are forgotten (raise --ctx to keep more)")
                generator.runner.reset()
                messages = system + [messages.last!]
                rendered = ""
                full = template.render(messages: messages, addGenerationPrompt: true)
                do { reply = try turn(full) } catch let e as ContextFullError {
                    note("error: \(e); this message alone is too long, try a shorter one")
                    messages = system
                    continue
                }
            } catch let e as ContextFullError {
                note("error: \(e); try a shorter message")
                messages.removeLast()
                continue
            }
            let replyText = try generator.tokenizer.decode(reply.filter { !generator.stopIds.contains($0) })
            messages.append((role: "assistant", content: replyText))
            // The cache holds the reply without its closing <|im_end|>\n: the next turn starts with it.
            rendered = full + replyText
        }
    }
}
