import Foundation
import LayerShare

/// `generate --chat` without --prompt: reads lines, runs commands, sends messages to the session.
struct InteractiveChat {
    let session: ChatSession
    let reader: LineReader
    /// Prints a turn's statistics (the same lines as one-shot generation).
    let report: (GenerationStats) -> Void

    func run(sampler: inout Sampler) throws {
        note("interactive chat: type a message and press Enter (an empty line is ignored); /help lists the commands; "
             + "Ctrl-C stops a reply; Ctrl-D, /exit or Ctrl-C twice at the prompt ends the session")
        ChatInterrupt.install(restartingCalls: true)
        var interruptsInARow = 0
        while true {
            let input = reader.read()
            if input == .interrupted {
                interruptsInARow += 1
                if interruptsInARow >= 2 { return }
                note("(line discarded; Ctrl-C again, Ctrl-D or /exit ends the session)")
                continue
            }
            interruptsInARow = 0
            guard case .line(let line) = input else { return }
            switch ChatCommand(parsing: line) {
            case .empty: continue
            case .exit: return
            case .help: note(ChatCommand.helpText)
            case .reset:
                session.reset()
                note("new conversation (system prompt kept)")
            case .system(nil): note("system prompt: " + (session.effectiveSystemPrompt.map { "\"\($0)\"" } ?? "none"))
            case .system(let text?):
                session.setSystemPrompt(text)
                note("system prompt set; new conversation")
            case .unknown(let text): note("unknown command \(text); /help lists the commands (// sends a message starting with /)")
            case .message(let text): try turn(text, sampler: &sampler)
            }
        }
    }

    private func turn(_ text: String, sampler: inout Sampler) throws {
        let result: ChatTurn
        do {
            result = try session.send(text, sampler: &sampler, shouldStop: { ChatInterrupt.isSet }, notice: { note("note: " + $0) }) {
                FileHandle.standardOutput.write(Data($0.utf8))
            }
        } catch let e as ChatMessageTooLong {
            note("error: \(e)")
            return
        }
        FileHandle.standardOutput.write(Data("\n".utf8))
        if ChatInterrupt.take() || result.interrupted {
            note("[interrupted after \(result.stats.generatedTokens) tokens; the reply so far stays in the conversation]")
        }
        report(result.stats)
        note("context: \(session.contextUsed) of \(session.generator.runner.capacity) tokens used")
    }
}
