import Foundation
import FuzzSupport
import ModelFormats

/// A Hugging Face checkpoint: parts config.json, model.safetensors.index.json (empty: none) and up to
/// three .safetensors shards, read as `SafetensorsModel(path:)` reads a directory, then the shapes
/// checked and every tensor's last row dequantized.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafetensors(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let p = parts(of: fuzzInput(data, size), count: 5)
    let config = p[0], index = p[1]
    if !index.isEmpty { _ = try? SafetensorsModel.shardNames(indexJSON: index, path: "fuzz/model.safetensors.index.json") }
    _ = try? SafetensorsModel.hyperParameters(configJSON: config, path: "fuzz/config.json", hasLMHead: false)
    var shards: [SafetensorsFile] = []
    for (i, bytes) in p[2...].enumerated() where !bytes.isEmpty || i == 0 {
        guard let shard = try? SafetensorsFile(data: bytes, path: "fuzz/shard\(i).safetensors") else { return 0 }
        for e in shard.entries.values {
            precondition(shard.bytes(of: e).count == e.byteCount)
        }
        shards.append(shard)
    }
    guard let model = try? SafetensorsModel(directory: "fuzz", shards: shards, configJSON: config, configPath: "fuzz/config.json"),
          (try? model.validateLlamaShapes()) != nil else { return 0 }
    for (name, _) in model.expectedLlamaShapes() {
        guard let w = try? model.weight(name) else { preconditionFailure("\(name) validated but missing") }
        _ = w.row(w.rows - 1)
    }
    return 0
}
