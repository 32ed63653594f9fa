import Foundation
import ModelFormats

/// Weights, tokenizer and chat template of one model file.
public final class LoadedModel {
    public let path: String
    public let weights: WeightSource
    public let tokenizer: Tokenizer
    public let chatTemplate: ChatTemplate

    public init(path: String) throws {
        self.path = path
        weights = try openModel(path: path)
        try weights.validateLlamaShapes()
        if let gguf = weights as? GGUFModel {
            tokenizer = try Tokenizer(gguf: gguf.file)
            chatTemplate = try ChatTemplate(gguf: gguf.file)
        } else {
            var dir = URL(fileURLWithPath: path)
            if !path.hasSuffix("/"), (try? dir.resourceValues(forKeys: [.isDirectoryKey]).isDirectory) != true {
                dir = dir.deletingLastPathComponent()
            }
            tokenizer = try Tokenizer(huggingFaceJSON: dir.appendingPathComponent("tokenizer.json").path)
            chatTemplate = try ChatTemplate(huggingFaceDirectory: dir)
        }
        // A padded embedding table (more rows than tokens) is fine: `Generator` never samples the padding.
        if tokenizer.vocabSize > weights.hyper.vocabSize {
            throw ModelError.vocabularyMismatch(model: weights.hyper.vocabSize, tokenizer: tokenizer.vocabSize,
                                                source: weights is GGUFModel ? "tokenizer.ggml.tokens" : "tokenizer.json")
        }
        try weights.validateFiniteWeights()
    }

    /// A text's ids with BOS in front where the model asks for one (`add_bos_token`: Gemma does,
    /// SmolLM2 does not), as llama.cpp's tools tokenize prompts.
    public func promptTokens(_ text: String, parseSpecial: Bool = true) -> [Int] {
        var ids = tokenizer.encode(text, parseSpecial: parseSpecial)
        if let bos = beginningToken, ids.first != bos { ids.insert(bos, at: 0) }
        return ids
    }

    /// The BOS id when the tokenizer adds one, else nil.
    public var beginningToken: Int? { tokenizer.addBosToken ? tokenizer.bosId : nil }

    /// Rows of the embedding table past the tokenizer's last id (padding; never sampled).
    public var paddedVocabulary: Int { max(0, hyper.vocabSize - tokenizer.vocabSize) }

    public var hyper: LlamaHyperParameters { weights.hyper }

    /// `$LAYERSHARE_MODEL`, else the model tools/bootstrap fetches into `models/` of this checkout.
    public static func defaultPath() -> String {
        if let env = ProcessInfo.processInfo.environment["LAYERSHARE_MODEL"], !env.isEmpty { return env }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        let candidate = root.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
        if FileManager.default.fileExists(atPath: candidate) { return candidate }
        return "models/SmolLM2-135M-Instruct.Q4_1.gguf"
    }
}
