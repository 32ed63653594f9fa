/// ChatML prompt rendering (`<|im_start|>role\ncontent<|im_end|>\n`), as used by SmolLM2.
///
/// SmolLM2's `tokenizer.chat_template` inserts a default system message when the first message
/// is not a system message; `ChatTemplate(gguf:)` extracts that prompt so rendering matches.
public struct ChatTemplate: Sendable, Equatable {
    /// System prompt inserted when the conversation does not start with one; nil for none.
    public var defaultSystemPrompt: String?

    public init(defaultSystemPrompt: String? = nil) {
        self.defaultSystemPrompt = defaultSystemPrompt
    }

    /// SmolLM2's built-in default.
    public static let smolLM2 = ChatTemplate(defaultSystemPrompt: "You are a helpful AI assistant named SmolLM, trained by Hugging Face")

    /// Reads `tokenizer.chat_template` and picks up a literal default system prompt of the form
    /// `'<|im_start|>system\n…<|im_end|>` inside the template, if any.
    public init(gguf: GGUFFile) throws {
        let template = try gguf.optionalString("tokenizer.chat_template") ?? ""
        self.init(defaultSystemPrompt: Self.defaultSystemPrompt(inTemplate: template))
    }

    static func defaultSystemPrompt(inTemplate t: String) -> String? {
        let marker = "<|im_start|>system\n"
        guard let start = t.range(of: marker), let end = t.range(of: "<|im_end|>", range: start.upperBound..<t.endIndex) else {
            return nil
        }
        let prompt = String(t[start.upperBound..<end.lowerBound])
        // A template that builds the system turn from a variable is not a fixed default.
        return prompt.contains("{{") || prompt.contains("{%") || prompt.contains("'") ? nil : prompt
    }

    /// Renders the conversation; with `addGenerationPrompt` it ends with `<|im_start|>assistant\n`.
    public func render(messages: [(role: String, content: String)], addGenerationPrompt: Bool) -> String {
        var out = ""
        if let sys = defaultSystemPrompt, let first = messages.first, first.role != "system" {
            out += "<|im_start|>system\n\(sys)<|im_end|>\n"
        }
        for m in messages { out += "<|im_start|>\(m.role)\n\(m.content)<|im_end|>\n" }
        if addGenerationPrompt { out += "<|im_start|>assistant\n" }
        return out
    }
}
