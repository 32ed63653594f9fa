/// What to condition on: rendered text (tokenized with special tokens, as `layershare generate`
/// does) or token ids given by the client.
enum PromptInput: Sendable {
    case text(String)
    case tokens([Int])
}

/// `POST /v1/completions`.
struct CompletionRequest: Decodable {
    let fields: RequestFields
    let prompt: PromptInput

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        try c.rejectUnknownKeys(RequestFields.names.union(RequestFields.offValues.keys).union(["prompt"]), in: "")
        fields = try RequestFields(from: c)
        guard c.contains(AnyKey("prompt")) else { throw APIError.invalid("prompt is required", param: "prompt") }
        if let text = try? c.value(String.self, "prompt") {
            prompt = .text(text)
        } else if let texts = try? c.value([String].self, "prompt") {
            guard texts.count == 1 else {
                throw APIError.unsupported("prompt", "a batch of \(texts.count) prompts (send one request per prompt)")
            }
            prompt = .text(texts[0])
        } else if let ids = try? c.value([Int].self, "prompt") {
            prompt = .tokens(ids)
        } else {
            throw APIError.invalid("prompt must be a string, an array of one string, or an array of token ids", param: "prompt")
        }
    }
}

/// One chat message; content is a string or a list of text parts.
struct ChatMessage: Decodable {
    let role: String
    let content: String

    /// ChatML roles the template renders; "developer" is OpenAI's newer name for "system".
    static let roles: Set<String> = ["system", "developer", "user", "assistant"]

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        try c.rejectUnknownKeys(["role", "content", "name"], in: "a message")
        guard let role = try c.value(String.self, "role") else {
            throw APIError.invalid("every message needs a role", param: "messages")
        }
        guard Self.roles.contains(role) else {
            throw APIError.invalid("message role \"\(role)\" is not one of system, developer, user, assistant", param: "messages")
        }
        self.role = role == "developer" ? "system" : role
        switch try c.value(JSONValue.self, "content") {
        case .string(let text)?: content = text
        case .array?: content = try c.decode([ContentPart].self, forKey: AnyKey("content")).map(\.text).joined()
        default: throw APIError.invalid("message content must be a string or a list of text parts", param: "messages")
        }
    }
}

/// `{"type": "text", "text": ...}`; images and audio are refused.
struct ContentPart: Decodable {
    let text: String

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        let type = try c.value(String.self, "type")
        guard type == "text", let text = try c.value(String.self, "text") else {
            throw APIError.unsupported("messages", "content of type \(type ?? "(none)") (only text parts)")
        }
        self.text = text
    }
}

/// `POST /v1/chat/completions`.
struct ChatRequest: Decodable {
    let fields: RequestFields
    let messages: [ChatMessage]

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        try c.rejectUnknownKeys(RequestFields.names.union(RequestFields.offValues.keys).union(["messages", "max_completion_tokens"]),
                                in: "")
        fields = try RequestFields(from: c, maxTokensAlias: "max_completion_tokens")
        guard let messages = try c.value([ChatMessage].self, "messages") else {
            throw APIError.invalid("messages is required", param: "messages")
        }
        guard !messages.isEmpty else { throw APIError.invalid("messages must not be empty", param: "messages") }
        self.messages = messages
    }
}
