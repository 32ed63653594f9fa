import FuzzSupport
import ModelFormats

/// A GGUF file as a model is opened from it (`LoadedModel`): the file itself, every metadata value
/// through the typed getters, the hyper-parameters and tensor table of `GGUFModel`, the tokenizer
/// and chat template, then a little of what a run does with them.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGGUF(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let file = try? GGUFFile(data: fuzzInput(data, size), path: "fuzz.gguf") else { return 0 }
    readMetadata(file)
    for t in file.tensors {
        let bytes = file.bytes(of: t)
        precondition(bytes.count == t.byteCount)
        _ = bytes.last
    }
    if let model = try? GGUFModel(file: file), (try? model.validateLlamaShapes()) != nil {
        for (name, _) in model.expectedLlamaShapes() {
            guard let w = try? model.weight(name) else { preconditionFailure("\(name) validated but missing") }
            _ = w.row(w.rows - 1)
        }
    }
    if let tokenizer = try? Tokenizer(gguf: file) { exerciseTokenizer(tokenizer) }
    if let template = try? ChatTemplate(gguf: file) {
        _ = template.render(messages: [(role: "user", content: "Hi")], addGenerationPrompt: true)
    }
    return 0
}

private func readMetadata(_ file: GGUFFile) {
    for key in file.metadataKeys {
        _ = try? file.int(key)
        _ = try? file.float(key)
        _ = try? file.string(key)
        _ = try? file.bool(key)
        _ = try? file.stringArray(key)
        _ = try? file.intArray(key)
        if let v = file.metadata[key] { _ = (v.description, v.typeName) }
    }
}
