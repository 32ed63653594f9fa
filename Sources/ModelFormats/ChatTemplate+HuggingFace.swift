import Foundation

extension ChatTemplate {
    /// The template of a Hugging Face directory, recognised like a GGUF's: `chat_template` in
    /// `tokenizer_config.json` (a string, or the older list of named templates, of which `default`
    /// is taken), else a `chat_template.jinja` file beside it; without either, the ChatML fallback
    /// with its notice. A config that is not a JSON object is an error naming the file.
    public init(huggingFaceDirectory dir: URL) throws {
        let configPath = dir.appendingPathComponent("tokenizer_config.json").path
        var template: String?
        if let data = try FileCheck.contentsIfPresent(configPath, "tokenizer config") {
            guard let config = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
                throw ModelError.invalidConfig(path: configPath, key: "(root)", reason: "is not a JSON object")
            }
            switch config["chat_template"] {
            case let s as String:
                template = s
            case let list as [Any]:
                let named = list.compactMap { $0 as? [String: Any] }
                template = (named.first { $0["name"] as? String == "default" } ?? named.first)?["template"] as? String
            default:
                break
            }
        }
        if template == nil, let data = try FileCheck.contentsIfPresent(dir.appendingPathComponent("chat_template.jinja").path, "chat template") {
            template = String(decoding: data, as: UTF8.self)
        }
        self.init(template: template)
    }
}
