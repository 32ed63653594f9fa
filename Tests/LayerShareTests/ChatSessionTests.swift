import Foundation
import XCTest
@testable import LayerShare

/// ChatSession's bookkeeping (what the conversation and the cache hold) and the command parser.
final class ChatSessionTests: XCTestCase {
    private func session(context: Int, maxTokens: Int, stop: [String] = []) throws -> ChatSession {
        let model = try SharedModel.model()
        var options = RunnerOptions()
        options.backend = .cpu
        options.context = context
        let runner = try RunnerFactory.make(model: model, options: options)
        return ChatSession(generator: Generator(runner: runner, tokenizer: model.tokenizer), template: model.chatTemplate,
                           systemPrompt: nil, maxTokens: maxTokens, stop: stop)
    }

    private func greedy() throws -> Sampler { try Sampler(temperature: 0, topK: 0, topP: 1, minP: 0, seed: 1) }

    /// Greedy reply to the whole conversation fed at once into an empty cache.
    private func replyFromScratch(_ s: ChatSession, _ conversation: [(role: String, content: String)], maxTokens: Int) throws -> String {
        let runner = s.generator.runner
        runner.reset()
        var sampler = try greedy()
        let text = s.template.render(messages: conversation, addGenerationPrompt: true)
        let (tokens, _) = try s.generator.generate(promptTokens: s.generator.tokenizer.encode(text), maxTokens: maxTokens, sampler: &sampler)
        return try s.generator.tokenizer.decode(tokens.filter { !s.generator.stopIds.contains($0) })
    }

    /// With --stop the conversation keeps the reply only up to the stop text, and the cache agrees:
    /// the next reply is the one a fresh cache gives for that conversation.
    func testAStoppedReplyIsKeptUpToTheStop() throws {
        let s = try session(context: 512, maxTokens: 16, stop: ["Paris"])
        var sampler = try greedy()
        var shown = ""
        let first = try s.send("What is the capital of France?", sampler: &sampler, shouldStop: { false }, notice: { XCTFail($0) }) { shown += $0 }
        XCTAssertEqual(first.reply, "The capital of France is ")
        XCTAssertEqual(shown, first.reply)
        XCTAssertEqual(s.messages.last?.content, "The capital of France is ")
        let second = try s.send("And of Italy?", sampler: &sampler, shouldStop: { false }, notice: { XCTFail($0) }) { _ in }
        let conversation = Array(s.messages.dropLast())
        XCTAssertEqual(try replyFromScratch(s, conversation, maxTokens: 16), second.reply)
    }

    /// An interrupted reply keeps what was shown; the cache matches it as well.
    func testAnInterruptedReplyIsKeptAsShown() throws {
        let s = try session(context: 512, maxTokens: 40)
        var sampler = try greedy()
        var tokens = 0
        let turn = try s.send("Tell me a story about a dragon.", sampler: &sampler, shouldStop: { tokens += 1; return tokens >= 5 },
                              notice: { XCTFail($0) }) { _ in }
        XCTAssertTrue(turn.interrupted)
        XCTAssertEqual(turn.stats.generatedTokens, 5)
        XCTAssertEqual(s.messages.last?.content, turn.reply)
        XCTAssertFalse(turn.reply.isEmpty)
        let next = try s.send("Go on.", sampler: &sampler, shouldStop: { false }, notice: { XCTFail($0) }) { _ in }
        XCTAssertEqual(try replyFromScratch(s, Array(s.messages.dropLast()), maxTokens: 40), next.reply)
    }

    /// A full context: the next turn restarts from the system prompt with that message, saying so;
    /// a message too long even alone is refused and the conversation is left as it was.
    func testAFullContextRestartsTheConversation() throws {
        let s = try session(context: 96, maxTokens: 40)
        var sampler = try greedy()
        var notices: [String] = []
        _ = try s.send("Tell me a long story about a dragon.", sampler: &sampler, shouldStop: { false }, notice: { notices.append($0) }) { _ in }
        let turn = try s.send("And then what happened to the dragon and the knight?", sampler: &sampler, shouldStop: { false },
                              notice: { notices.append($0) }) { _ in }
        XCTAssertTrue(turn.restarted)
        XCTAssertTrue(notices.contains { $0.hasPrefix("the context is full (96 tokens") && $0.contains("starting a new conversation with the system prompt and this message") },
                      "\(notices)")
        XCTAssertEqual(s.messages.count, 2)
        XCTAssertEqual(s.messages.first?.content, "And then what happened to the dragon and the knight?")
        let before = s.messages.map(\.content), used = s.contextUsed
        XCTAssertThrowsError(try s.send(String(repeating: "dragon ", count: 200), sampler: &sampler, shouldStop: { false },
                                        notice: { notices.append($0) }) { _ in }) {
            XCTAssertTrue("\($0)".contains("the conversation is unchanged"), "\($0)")
        }
        XCTAssertEqual(s.messages.map(\.content), before)
        XCTAssertEqual(s.contextUsed, used)
    }

    func testResetAndSystemPromptClearTheCache() throws {
        let s = try session(context: 256, maxTokens: 4)
        var sampler = try greedy()
        _ = try s.send("Hi", sampler: &sampler, shouldStop: { false }, notice: { _ in }) { _ in }
        XCTAssertGreaterThan(s.contextUsed, 0)
        s.reset()
        XCTAssertEqual(s.contextUsed, 0)
        XCTAssertTrue(s.messages.isEmpty)
        _ = try s.send("Hi", sampler: &sampler, shouldStop: { false }, notice: { _ in }) { _ in }
        s.setSystemPrompt("You are a pirate.")
        XCTAssertEqual(s.contextUsed, 0)
        XCTAssertEqual(s.effectiveSystemPrompt, "You are a pirate.")
        let turn = try s.send("Hi", sampler: &sampler, shouldStop: { false }, notice: { _ in }) { _ in }
        let expected = s.template.render(messages: [("system", "You are a pirate."), ("user", "Hi")], addGenerationPrompt: true)
        XCTAssertEqual(turn.stats.promptTokens, s.generator.tokenizer.encode(expected).count)
    }

    func testCommandParsing() {
        XCTAssertEqual(ChatCommand(parsing: ""), .empty)
        XCTAssertEqual(ChatCommand(parsing: "   "), .empty)
        XCTAssertEqual(ChatCommand(parsing: "hello there "), .message("hello there "))
        XCTAssertEqual(ChatCommand(parsing: "/reset"), .reset)
        XCTAssertEqual(ChatCommand(parsing: " /exit "), .exit)
        XCTAssertEqual(ChatCommand(parsing: "/quit"), .exit)
        XCTAssertEqual(ChatCommand(parsing: "/help"), .help)
        XCTAssertEqual(ChatCommand(parsing: "/system"), .system(nil))
        XCTAssertEqual(ChatCommand(parsing: "/system  Be brief. "), .system("Be brief."))
        XCTAssertEqual(ChatCommand(parsing: "/reset now"), .unknown("/reset now"))
        XCTAssertEqual(ChatCommand(parsing: "/resets"), .unknown("/resets"))
        XCTAssertEqual(ChatCommand(parsing: "//etc/hosts"), .message("/etc/hosts"))
    }
}
