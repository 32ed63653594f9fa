import ArgumentParser
import Foundation
import LayerShare

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate text from a prompt, streaming it as it is produced.",
        discussion: """
        Statistics (prompt and generated token counts, prefill and decode tokens/s) go to stderr. With --chat the prompt is wrapped in the model's ChatML template; --chat without --prompt starts an interactive session: one user turn per line (an empty line is ignored), with line editing and this session's history (arrow keys; libedit, ~/.editrc applies; kept in memory only) when standard input is a terminal, plain lines when it is piped. Commands: /reset (new conversation), /system TEXT (set the system prompt, new conversation), /help, /exit. Ctrl-C during a reply stops it at the next token and the part shown stays in the conversation; at the prompt Ctrl-C discards the line, and a second Ctrl-C, Ctrl-D on an empty line or /exit ends the session. A reply is kept up to its --stop text. When a message does not fit the rest of the context, the conversation restarts with the system prompt and that message (earlier turns are forgotten), and says so. Without --chat, the prompt comes from --prompt (-p - reads standard input) or, when there is none and standard input is not a terminal, from standard input.

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

    @OptionGroup var sampling: SamplingOptions

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
        var sampler = try sampling.sampler(seed: seed)  // before the slow load
        let (model, runner) = try options.loadRunner()
        let generator = Generator(runner: runner, tokenizer: model.tokenizer)
        if ignoreEOS { generator.stopIds = [] }
        var template = model.chatTemplate
        if let system { template.defaultSystemPrompt = system }
        if chat, let notice = template.notice { note("warning: \(notice)") }

        func turn(_ text: String) throws -> [Int] {
            var watch = StopText(stop)
            let (tokens, stats) = try generator.generate(promptTokens: model.promptTokens(text), maxTokens: maxTokens, sampler: &sampler) { _, piece in
                FileHandle.standardOutput.write(Data(watch.append(piece).utf8))
                return !watch.stopped
            }
            FileHandle.standardOutput.write(Data(watch.finish().utf8))
            FileHandle.standardOutput.write(Data("\n".utf8))
            report(stats)
            return tokens
        }

        func report(_ stats: GenerationStats) {
            note(String(format: "prompt tokens: %d, generated tokens: %d, prefill: %.1f tok/s, decode: %.1f tok/s",
                        stats.promptTokens, stats.generatedTokens, stats.prefillTokensPerSecond, stats.decodeTokensPerSecond))
            if stats.reachedContextEnd {
                note("note: stopped at the end of the context (\(runner.capacity) tokens) after \(stats.generatedTokens) of --max-tokens \(maxTokens); raise --ctx for longer output")
            }
            if let memory = runner.deviceMemory {
                note("device memory: \(memory.current) bytes allocated, peak \(memory.peak)")
            }
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
        let session = ChatSession(generator: generator, template: model.chatTemplate, systemPrompt: system, maxTokens: maxTokens, stop: stop)
        try InteractiveChat(session: session, reader: makeLineReader(), report: { report($0) }).run(sampler: &sampler)
    }

    /// --prompt's text; without it, piped standard input (a terminal is never waited on; empty input is no prompt).
    private func promptText() throws -> String? {
        if let prompt { return try readPromptText(prompt) }
        guard standardInputIsPiped else { return nil }
        let text = readStandardInput()
        return text.isEmpty ? nil : text
    }
}
