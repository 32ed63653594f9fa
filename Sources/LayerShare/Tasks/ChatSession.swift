import Foundation
import ModelFormats

/// What one chat turn did.
public struct ChatTurn: Sendable {
    public var stats: GenerationStats
    /// The reply as shown and as kept in the conversation (cut before a stop text; partial when interrupted).
    public var reply: String
    public var interrupted: Bool
    /// The context was full: this turn started a new conversation (system prompt and this message).
    public var restarted: Bool
}

/// A message that does not fit the context even in a new conversation.
public struct ChatMessageTooLong: Error, CustomStringConvertible {
    public let tokens: Int
    public let capacity: Int
    public var description: String {
        "this message needs \(tokens) tokens with the system prompt, more than the context of \(capacity) leaves for a reply; "
            + "the conversation is unchanged (send a shorter message or raise --ctx)"
    }
}

/// A conversation kept in the model's KV cache: each turn feeds only what is new since the last one.
/// The cache always holds the tokens of `cached`, a prefix of the rendered conversation; a reply is
/// kept as it was shown (up to a stop text, or up to Ctrl-C) and the cache rewound to match it.
/// When a turn does not fit, the conversation restarts from the system prompt with that turn.
public final class ChatSession {
    public let generator: Generator
    public let template: ChatTemplate
    /// The explicit system prompt (nil: the template's default).
    public private(set) var systemPrompt: String?
    /// The conversation after the system prompt.
    public private(set) var messages: [(role: String, content: String)] = []
    public var maxTokens: Int
    public var stop: [String]
    /// Rendered text whose tokens the cache holds.
    private var cached: [UInt8] = []
    /// The last reply reached the end of the context: the next turn starts a new conversation.
    public private(set) var restartNext = false

    public init(generator: Generator, template: ChatTemplate, systemPrompt: String?, maxTokens: Int, stop: [String]) {
        self.generator = generator
        self.template = template
        self.systemPrompt = systemPrompt
        self.maxTokens = maxTokens
        self.stop = stop
    }

    private var runner: ModelRunner { generator.runner }
    public var contextUsed: Int { runner.position }

    /// A new conversation with the same system prompt; the cache is cleared.
    public func reset() {
        messages = []
        cached = []
        restartNext = false
        runner.reset()
    }

    /// Sets the system prompt and starts a new conversation.
    public func setSystemPrompt(_ text: String) {
        systemPrompt = text
        reset()
    }

    /// The system prompt in effect (explicit or the template's), nil for none.
    public var effectiveSystemPrompt: String? { systemPrompt ?? template.defaultSystemPrompt }

    private func rendered(_ conversation: [(role: String, content: String)]) -> [UInt8] {
        let system = systemPrompt.map { [(role: "system", content: $0)] } ?? []
        return Array(template.render(messages: system + conversation, addGenerationPrompt: true).utf8)
    }

    /// Sends `message` and streams the reply to `output`. `shouldStop` is asked after every token
    /// (Ctrl-C); `notice` gets what the user should be told (a restart, the end of the context).
    public func send(_ message: String, sampler: inout Sampler, shouldStop: () -> Bool,
                     notice: (String) -> Void, output: (String) -> Void) throws -> ChatTurn {
        let tokenizer = generator.tokenizer
        var conversation = messages + [(role: "user", content: message)]
        var full = rendered(conversation)
        var feed: [Int] = []
        var restarted = restartNext
        if !restartNext {
            precondition(full.starts(with: cached), "the cache no longer matches the conversation")
            feed = tokenizer.encode(String(decoding: full[cached.count...], as: UTF8.self))
            // The same rule as Generator: the prompt must leave at least one position for the reply.
            restarted = feed.count >= runner.capacity - runner.position
        }
        if restarted {
            let alone = [(role: "user", content: message)]
            let aloneText = rendered(alone)
            let aloneTokens = tokenizer.encode(String(decoding: aloneText, as: UTF8.self))
            guard aloneTokens.count < runner.capacity else { throw ChatMessageTooLong(tokens: aloneTokens.count, capacity: runner.capacity) }
            if !restartNext {
                notice("the context is full (\(runner.capacity) tokens, \(runner.capacity - runner.position) free, this turn needs \(feed.count)): "
                       + "starting a new conversation with the system prompt and this message; earlier turns are forgotten (raise --ctx to keep more)")
            } else {
                notice("starting a new conversation with the system prompt and this message (the last reply filled the context)")
            }
            runner.reset()
            (cached, conversation, full, feed, restartNext) = ([], alone, aloneText, aloneTokens, false)
        }

        let promptEnd = runner.position + feed.count
        var watch = StopText(stop)
        var shown = ""
        var interrupted = false
        let (tokens, stats) = try generator.generate(promptTokens: feed, maxTokens: maxTokens, sampler: &sampler) { _, piece in
            let visible = watch.append(piece)
            shown += visible
            output(visible)
            if shouldStop() { interrupted = true; return false }
            return !watch.stopped
        }
        let held = watch.finish()
        shown += held
        output(held)

        // Keep the longest run of cached reply tokens that spells a whole-character prefix of what was
        // shown; the rest of the shown text (after a stop cut, or a last token never fed) is fed next turn.
        let reply = tokens.filter { !generator.stopIds.contains($0) }
        let shownBytes = Array(shown.utf8)
        var keep = min(runner.position - promptEnd, reply.count)
        var keptBytes = try tokenizer.decodeBytes(Array(reply.prefix(keep)))
        while keep > 0, !(shownBytes.starts(with: keptBytes) && String(validating: keptBytes, as: UTF8.self) != nil) {
            keep -= 1
            keptBytes = try tokenizer.decodeBytes(Array(reply.prefix(keep)))
        }
        try runner.rewind(to: promptEnd + keep)
        cached = full + keptBytes
        messages = conversation + [(role: "assistant", content: shown)]
        if stats.reachedContextEnd {
            restartNext = true
            notice("the context is full (\(runner.capacity) tokens): the reply stops here, and the next message starts a new conversation "
                   + "with the system prompt (raise --ctx for longer conversations)")
        }
        return ChatTurn(stats: stats, reply: shown, interrupted: interrupted, restarted: restarted)
    }
}
