import Foundation

/// Why generation ended, in OpenAI's words: `stop` (an end token or a stop string) or `length`
/// (max_tokens, or the end of the context).
enum FinishReason: String, Encodable, Sendable {
    case stop, length
}

struct Usage: Encodable, Sendable {
    let promptTokens: Int
    let completionTokens: Int

    enum CodingKeys: String, CodingKey { case promptTokens = "prompt_tokens", completionTokens = "completion_tokens", totalTokens = "total_tokens" }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(promptTokens, forKey: .promptTokens)
        try c.encode(completionTokens, forKey: .completionTokens)
        try c.encode(promptTokens + completionTokens, forKey: .totalTokens)
    }
}

/// The two endpoints' response objects, whole or as stream chunks. Field names and nulls follow
/// OpenAI's: `chat.completion` / `chat.completion.chunk` with `message` / `delta`, and
/// `text_completion` with `text` in both forms.
struct CompletionObject: Encodable {
    enum Kind { case chat, chatChunk, text }

    let kind: Kind
    let id: String
    let created: Int
    let model: String
    /// One choice (index 0), or none for the usage-only chunk at the end of a stream.
    let choice: Choice?
    let usage: Usage?
    /// Chunks carry `"usage": null` when the client asked for usage, except the last.
    let usageNull: Bool

    struct Choice {
        /// Text of the choice (or of the delta).
        var text: String?
        /// Whether a chat delta carries the role (first chunk) and the message a role at all.
        var role: Bool
        var finishReason: FinishReason?
    }

    enum Keys: String, CodingKey {
        case id, object, created, model, choices, usage, index, text, message, delta, role, content, logprobs
        case finishReason = "finish_reason"
    }

    var objectName: String {
        switch kind {
        case .chat: return "chat.completion"
        case .chatChunk: return "chat.completion.chunk"
        case .text: return "text_completion"
        }
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(id, forKey: .id)
        try c.encode(objectName, forKey: .object)
        try c.encode(created, forKey: .created)
        try c.encode(model, forKey: .model)
        var choices = c.nestedUnkeyedContainer(forKey: .choices)
        if let choice {
            var o = choices.nestedContainer(keyedBy: Keys.self)
            try o.encode(0, forKey: .index)
            switch kind {
            case .text:
                try o.encode(choice.text ?? "", forKey: .text)
            case .chat, .chatChunk:
                var m = o.nestedContainer(keyedBy: Keys.self, forKey: kind == .chat ? .message : .delta)
                if choice.role { try m.encode("assistant", forKey: .role) }
                if let text = choice.text { try m.encode(text, forKey: .content) }
            }
            try o.encodeNil(forKey: .logprobs)
            try o.encode(choice.finishReason, forKey: .finishReason)
        }
        if let usage {
            try c.encode(usage, forKey: .usage)
        } else if usageNull {
            try c.encodeNil(forKey: .usage)
        }
    }

    func jsonData() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return (try? encoder.encode(self)) ?? Data("{}".utf8)
    }
}

/// Server-sent events: one `data:` line per JSON object and a blank line, ended by `data: [DONE]`.
enum SSE {
    static func event(_ json: Data) -> Data { Data("data: ".utf8) + json + Data("\n\n".utf8) }
    static let done = Data("data: [DONE]\n\n".utf8)
}
