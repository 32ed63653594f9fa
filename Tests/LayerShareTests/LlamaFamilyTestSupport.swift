import Foundation
import LayerShare
import ModelFormats
import XCTest

/// Small random-weight GGUFs in the shape of Llama 3 (rope_freqs, GQA 4:1, untied output, Q8_0) and
/// Qwen2 (Q/K/V biases, NEOX RoPE, tied output, odd sizes), written by tools/random_gguf.py with the
/// `gguf` package, one file per set of options per test process.
enum RandomGGUF {
    private static let lock = NSLock()
    private static var files: [[String]: String] = [:]
    private static let directory: URL = {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("layershare-random-gguf-\(ProcessInfo.processInfo.processIdentifier)")
        try? FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }()

    /// The path of a GGUF written with `tools/random_gguf.py --style style options…`.
    static func path(_ style: String, _ options: [String] = []) throws -> String {
        let key = [style] + options
        lock.lock(); defer { lock.unlock() }
        if let p = files[key] { return p }
        let p = directory.appendingPathComponent("\(style)-\(files.count).gguf").path
        _ = try runTool("random_gguf.py", ["--style", style, "--output", p] + options)
        files[key] = p
        return p
    }

    static func model(_ style: String, _ options: [String] = []) throws -> LoadedModel {
        try LoadedModel(path: path(style, options))
    }

    private static var references: [String: [Float]] = [:]

    /// Float64 logits [tokens, vocab] of tools/reference_forward.py on the file (run once per file and tokens).
    static func referenceLogits(_ path: String, _ tokens: [Int], vocab: Int) throws -> [Float] {
        let key = path + ":" + tokens.map(String.init).joined(separator: ",")
        lock.lock(); defer { lock.unlock() }
        if let r = references[key] { return r }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("family-ref-\(UUID().uuidString).npy")
        defer { try? FileManager.default.removeItem(at: out) }
        _ = try runTool("reference_forward.py", ["--model", path, "--tokens", tokens.map(String.init).joined(separator: ","),
                                                 "--output", out.path])
        let (shape, values) = try NpyReader.read(out)
        guard shape == [tokens.count, vocab] else { throw ModelLoadError("reference logits have shape \(shape)") }
        references[key] = values
        return values
    }

    /// Logits of every token of `tokens`: the first `prefill` in chunks of `maxChunk` rows (so later
    /// chunks start past 0), the rest one decode step each.
    static func logits(_ runner: ModelRunner, _ tokens: [Int], prefill: Int) throws -> [Float] {
        runner.reset()
        var logits = try runner.forward(Array(tokens[..<prefill]), logits: .all)
        for t in tokens[prefill...] { logits += try runner.forward([t], logits: .last) }
        return logits
    }

    /// A prompt of the model's own tokens (BOS in front where it adds one), 20 or more.
    static let text = "the cat sat on the mat in the sun; then a dog ran in"
}

/// A model's weights with one float32 tensor replaced by zeros (to show a test sees that tensor).
final class ZeroedTensor: WeightSource {
    let base: WeightSource
    let name: String
    /// Zero bytes owned here, for as long as the tensors handed out (whose owner is self).
    private let zeros: UnsafeMutableRawBufferPointer
    init(_ base: WeightSource, _ name: String) {
        self.base = base
        self.name = name
        let count = ((try? base.weight(name).elementCount) ?? 0) * 4
        zeros = .allocate(byteCount: max(count, 4), alignment: 16)
        zeros.initializeMemory(as: UInt8.self, repeating: 0)
    }
    deinit { zeros.deallocate() }
    var hyper: LlamaHyperParameters { base.hyper }
    var tensorNames: [String] { base.tensorNames }
    func weight(_ n: String) throws -> WeightTensor {
        let w = try base.weight(n)
        guard n == name, w.type == .f32 else { return w }
        return WeightTensor(name: n, type: .f32, shape: w.shape,
                            data: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(zeros)[0..<(w.elementCount * 4)]), owner: self)
    }
}
