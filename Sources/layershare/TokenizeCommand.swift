import ArgumentParser
import Foundation
import LayerShare

/// llama.cpp's `llama-tokenize`: text in, token ids out. Reads only the tokenizer, so
/// vocabulary-only GGUFs (llama.cpp's ggml-vocab-*.gguf) work.
struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Print the token ids of a text (space-separated on one line; --json for scripts, --show-pieces for people).",
        discussion: """
        The model may be a GGUF (a vocabulary-only one is enough), a Hugging Face directory with tokenizer.json, or a tokenizer.json file. The text comes from --prompt (- reads standard input), --file, or standard input when neither is given. BOS (and EOS) are added when the model asks for them (tokenizer.ggml.add_bos_token; SentencePiece defaults to yes) unless --no-bos; special-token texts such as <|im_start|> become their ids unless --no-parse-special.
        """
    )

    @Option(name: [.customShort("m"), .long],
            help: "A .gguf file (vocabulary-only is fine), a Hugging Face directory or a tokenizer.json. Default: the bootstrap model.")
    var model: String?

    @Option(name: [.customShort("p"), .long], help: "Text to tokenize (- reads standard input).")
    var prompt: String?

    @Option(name: [.customShort("f"), .long], help: "Read the text from this UTF-8 file.")
    var file: String?

    @Flag(help: "Print {\"ids\": [...]} (with \"pieces\" when --show-pieces is given).")
    var json = false

    @Flag(help: "Print one line per token: id -> 'piece'.")
    var showPieces = false

    @Flag(help: "Do not add BOS / EOS even if the model asks for them.")
    var noBos = false

    @Flag(help: "Tokenize special-token texts (<|im_start|>, <s>, ...) as plain text.")
    var noParseSpecial = false

    func validate() throws {
        if prompt != nil, file != nil { throw ValidationError("give either --prompt or --file, not both") }
    }

    func run() throws {
        let path = model ?? LoadedModel.defaultPath()
        let tokenizer = try Self.loadTokenizer(path)
        let text: String
        if let file {
            text = try readTextFile(file, "text file")
        } else if let prompt {
            text = prompt == "-" ? readStandardInput() : prompt
        } else {
            text = readStandardInput()
        }
        let ids = tokenizer.encode(text, addSpecial: !noBos, parseSpecial: !noParseSpecial)
        let output = TokenizeOutput(ids: ids, tokenizer: tokenizer)
        if json {
            print(try output.json(withPieces: showPieces))
        } else if showPieces {
            output.table.forEach { print($0) }
        } else {
            print(output.line)
        }
    }

    /// The tokenizer of a GGUF file, a Hugging Face directory or a tokenizer.json; a missing path and
    /// a file that is neither are told apart.
    static func loadTokenizer(_ path: String) throws -> Tokenizer {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw ValidationError("model not found at \(path): pass --model FILE (a .gguf, a Hugging Face directory or a tokenizer.json)")
        }
        if isDir.boolValue {
            let json = (path as NSString).appendingPathComponent("tokenizer.json")
            guard FileManager.default.fileExists(atPath: json) else {
                throw ValidationError("\(path) is a directory without tokenizer.json")
            }
            return try Tokenizer(huggingFaceJSON: json)
        }
        if path.hasSuffix(".json") { return try Tokenizer(huggingFaceJSON: path) }
        return try Tokenizer(gguf: try GGUFFile(path: path))
    }
}

/// The three ways `tokenize` prints ids.
struct TokenizeOutput {
    let ids: [Int]
    let tokenizer: Tokenizer

    var line: String { ids.map(String.init).joined(separator: " ") }

    /// A piece as text; bytes that are not UTF-8 on their own (half of a character) as \xNN.
    func piece(_ id: Int) -> String {
        let bytes = tokenizer.pieceBytes(id) ?? []
        if let s = String(validating: bytes, as: UTF8.self) { return s }
        return bytes.map { $0 < 0x80 ? String(UnicodeScalar($0)) : "\\x" + String(format: "%02X", $0) }.joined()
    }

    /// `   id -> 'piece'` like llama-tokenize, control characters escaped so each token stays on one line.
    var table: [String] {
        let width = ids.map { String($0).count }.max() ?? 1
        return ids.map { id in
            let shown = piece(id).unicodeScalars.map { s -> String in
                switch s {
                case "\n": return "\\n"
                case "\r": return "\\r"
                case "\t": return "\\t"
                default: return s.value < 0x20 ? String(format: "\\x%02X", s.value) : String(s)
                }
            }.joined()
            return String(repeating: " ", count: width - String(id).count) + "\(id) -> '\(shown)'"
        }
    }

    private struct JSONForm: Encodable {
        let ids: [Int]
        let pieces: [String]?
    }

    func json(withPieces: Bool) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        let data = try encoder.encode(JSONForm(ids: ids, pieces: withPieces ? ids.map(piece) : nil))
        return String(decoding: data, as: UTF8.self)
    }
}
