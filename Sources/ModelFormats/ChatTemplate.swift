/// Chat prompt rendering for the template families GGUF files carry in `tokenizer.chat_template`
/// (Jinja text, recognised by its markers rather than executed):
/// - ChatML (`<|im_start|>role\ncontent<|im_end|>\n`: SmolLM2, Qwen2, …);
/// - Llama 3 (`<|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>`);
/// - Gemma (`<start_of_turn>user\ncontent<end_of_turn>\n`, the assistant is `model`, and a system
///   message is put in front of the first user message, as Gemma's template does).
/// BOS is not written: the tokenizer adds it where the model asks. A file without a template, or
/// with one of none of these families, falls back to ChatML and says so in `notice`.
public struct ChatTemplate: Sendable, Equatable {
    public enum Family: String, Sendable, CaseIterable {
        case chatML = "ChatML"
        case llama3 = "Llama 3"
        case gemma = "Gemma"
    }

    public var family: Family
    /// System prompt inserted when the conversation does not start with one; nil for none.
    public var defaultSystemPrompt: String?
    /// Why the family is a fallback (no template, or one not recognised); nil when recognised.
    public var notice: String?

    public init(family: Family = .chatML, defaultSystemPrompt: String? = nil, notice: String? = nil) {
        self.family = family
        self.defaultSystemPrompt = defaultSystemPrompt
        self.notice = notice
    }

    /// SmolLM2's built-in default.
    public static let smolLM2 = ChatTemplate(defaultSystemPrompt: "You are a helpful AI assistant named SmolLM, trained by Hugging Face")

    /// Reads `tokenizer.chat_template`: its family, and for ChatML a literal default system prompt of
    /// the form `'<|im_start|>system\n…<|im_end|>` inside the template, if any.
    public init(gguf: GGUFFile) throws {
        self.init(template: try gguf.optionalString("tokenizer.chat_template"))
    }

    public init(template: String?) {
        guard let t = template, !t.isEmpty else {
            self.init(notice: "the model has no chat template (tokenizer.chat_template); using ChatML, which a base model was not trained on")
            return
        }
        if t.contains("<|start_header_id|>") {
            self.init(family: .llama3)
        } else if t.contains("<start_of_turn>") {
            self.init(family: .gemma)
        } else if t.contains("<|im_start|>") {
            self.init(family: .chatML, defaultSystemPrompt: Self.defaultSystemPrompt(inTemplate: t))
        } else {
            self.init(notice: "the model's chat template is none of \(Family.allCases.map(\.rawValue).joined(separator: ", ")); using ChatML, "
                      + "which may not be what the model was trained on (or run without --chat for raw text)")
        }
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

    /// Renders the conversation; with `addGenerationPrompt` it ends with the assistant's turn opened.
    public func render(messages: [(role: String, content: String)], addGenerationPrompt: Bool) -> String {
        var messages = messages
        if let sys = defaultSystemPrompt, let first = messages.first, first.role != "system" { messages.insert((role: "system", content: sys), at: 0) }
        switch family {
        case .chatML:
            var out = messages.map { "<|im_start|>\($0.role)\n\($0.content)<|im_end|>\n" }.joined()
            if addGenerationPrompt { out += "<|im_start|>assistant\n" }
            return out
        case .llama3:
            var out = messages.map { "<|start_header_id|>\($0.role)<|end_header_id|>\n\n\($0.content)<|eot_id|>" }.joined()
            if addGenerationPrompt { out += "<|start_header_id|>assistant<|end_header_id|>\n\n" }
            return out
        case .gemma:
            var prefix = ""
            if messages.first?.role == "system" { prefix = messages.removeFirst().content + "\n\n" }
            var out = ""
            for m in messages {
                let role = m.role == "assistant" ? "model" : m.role
                out += "<start_of_turn>\(role)\n\(prefix)\(m.content)<end_of_turn>\n"
                prefix = ""
            }
            if addGenerationPrompt { out += "<start_of_turn>model\n" }
            return out
        }
    }

    /// The special token that ends a turn (generation stops at it).
    public var endOfTurn: String {
        switch family {
        case .chatML: return "<|im_end|>"
        case .llama3: return "<|eot_id|>"
        case .gemma: return "<end_of_turn>"
        }
    }
}
