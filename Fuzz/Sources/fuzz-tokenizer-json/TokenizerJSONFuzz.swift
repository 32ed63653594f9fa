import Foundation
import FuzzSupport
import ModelFormats

/// A Hugging Face tokenizer: parts tokenizer.json, tokenizer_config.json (empty: none) and a prompt,
/// read as `Tokenizer(huggingFaceJSON:)` reads them, then the prompt encoded and decoded.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTokenizerJSON(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let p = parts(of: fuzzInput(data, size), count: 3)
    guard let tokenizer = try? Tokenizer(huggingFaceJSON: p[0], config: p[1].isEmpty ? nil : p[1], path: "fuzz/tokenizer.json") else {
        return 0
    }
    exerciseTokenizer(tokenizer)
    exerciseTokenizer(tokenizer, text: String(decoding: p[2], as: UTF8.self))
    return 0
}
