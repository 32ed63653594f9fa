import Foundation
import ModelFormats

/// A LiSA adapter file: the fitted parameters of every LiSA layer as float32 safetensors, named
/// `blk.L.lisa.<part>` (head_mix, ffn_in, ffn_in_bias, ffn_out, out_bias, q_lowrank, k_lowrank,
/// rope_freqs; parts of size 0 are absent). A plan names it by path and content hash, so a plan
/// never runs with parameters other than those it was measured with.
public enum LiSAAdapter {
    public static let formatName = "layershare-lisa-adapter"

    /// Writes `layers` to `path`; returns the file's content hash (`contentHash`).
    @discardableResult
    public static func write(_ layers: [LiSALayerParameters], modelHash: String?, metadata: [String: String] = [:], to path: String) throws -> String {
        var w = SafetensorsWriter()
        w.metadata = metadata.merging(["format": formatName, "layers": layers.map { String($0.layer) }.joined(separator: ",")]) { $1 }
        if let modelHash { w.metadata["model"] = modelHash }
        for p in layers.sorted(by: { $0.layer < $1.layer }) {
            for part in parts(of: p) where !part.values.isEmpty {
                w.tensors.append(.init(name: "blk.\(p.layer).lisa.\(part.name)", shape: part.shape, values: part.values))
            }
            w.metadata["blk.\(p.layer).lisa.rank"] = String(p.rank)
            w.metadata["blk.\(p.layer).lisa.ffn_width"] = String(p.ffnWidth)
        }
        let data = try w.encoded()
        try data.write(to: URL(fileURLWithPath: path), options: .atomic)
        return data.withUnsafeBytes { contentHash($0) }
    }

    /// 64-bit FNV-1a of the file's bytes, printed like the weights hash.
    public static func contentHash(_ bytes: UnsafeRawBufferPointer) -> String {
        "fnv1a64:" + WeightsHash.hex(WeightsHash.feed(WeightsHash.offsetBasis, bytes))
    }

    /// Reads the parameters of `layers` for a model of shape `hyper`, checking the hash the plan
    /// recorded; throws naming every missing, mis-shaped or non-finite tensor.
    public static func read(path: String, expectedHash: String, layers: [Int], hyper h: LlamaHyperParameters) throws -> [Int: LiSALayerParameters] {
        guard let data = try FileCheck.contentsIfPresent(path, "LiSA adapter") else {
            throw ModelLoadError("LiSA adapter \(path) does not exist")
        }
        let hash = data.withUnsafeBytes { contentHash($0) }
        guard hash == expectedHash else {
            throw ModelLoadError("LiSA adapter \(path) has content hash \(hash) but the plan was made with \(expectedHash): "
                                 + "the plan points at a different adapter (re-run calibrate, or use the adapter it wrote)")
        }
        return try decode(data, path: path, layers: layers, hyper: h).parameters
    }

    /// The parameters of `layers` in an adapter's bytes, and the file's metadata (no hash check).
    static func decode(_ data: Data, path: String, layers: [Int]?, hyper h: LlamaHyperParameters) throws
        -> (parameters: [Int: LiSALayerParameters], metadata: [String: String]) {
        let file: SafetensorsFile
        do { file = try SafetensorsFile(data: data, path: path) } catch { throw ModelLoadError("LiSA adapter \(path): \(error)") }
        let layers = layers ?? (file.metadata["layers"] ?? "").split(separator: ",").compactMap { Int($0) }
        var problems: [String] = []
        var out: [Int: LiSALayerParameters] = [:]
        for l in layers {
            let prefix = "blk.\(l).lisa."
            guard let rank = file.metadata[prefix + "rank"].flatMap(Int.init), let ffn = file.metadata[prefix + "ffn_width"].flatMap(Int.init),
                  (0...h.headDim).contains(rank), (0...4096).contains(ffn) else {
                problems.append("layer \(l): metadata \(prefix)rank / \(prefix)ffn_width missing or out of range")
                continue
            }
            var template = LiSALayerParameters.permutation(Array(0..<h.heads), layer: l, kvHeads: h.kvHeads, hidden: h.hiddenSize,
                                                           headDim: h.headDim, rank: rank, ffnWidth: ffn)
            var values: [String: [Float]] = [:]
            for part in parts(of: template) {
                let name = prefix + part.name
                guard let e = file.entries[name] else {
                    if !part.values.isEmpty { problems.append("layer \(l): tensor \(name) is missing") }
                    continue
                }
                guard e.type == .f32, e.shape == part.shape else {
                    problems.append("layer \(l): tensor \(name) is \(e.type) \(e.shape), expected F32 \(part.shape)")
                    continue
                }
                let raw = file.bytes(of: e)
                values[part.name] = (0..<(raw.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
            }
            template.headMix = values["head_mix"] ?? template.headMix
            template.ffnIn = values["ffn_in"] ?? template.ffnIn
            template.ffnInBias = values["ffn_in_bias"] ?? template.ffnInBias
            template.ffnOut = values["ffn_out"] ?? template.ffnOut
            template.outBias = values["out_bias"] ?? template.outBias
            template.queryLowRank = values["q_lowrank"] ?? template.queryLowRank
            template.keyLowRank = values["k_lowrank"] ?? template.keyLowRank
            template.ropeFrequencies = values["rope_freqs"] ?? template.ropeFrequencies
            problems += template.problems(heads: h.heads, kvHeads: h.kvHeads, hidden: h.hiddenSize, headDim: h.headDim).map { "layer \(l): \($0)" }
            out[l] = template
        }
        guard problems.isEmpty else {
            throw ModelLoadError("LiSA adapter \(path) does not fit the plan (\(problems.count) problem\(problems.count == 1 ? "" : "s")):\n"
                                 + problems.map { "  - \($0)" }.joined(separator: "\n"))
        }
        return (out, file.metadata)
    }

    /// Each stored part: name, safetensors shape (outermost first), values.
    static func parts(of p: LiSALayerParameters) -> [(name: String, shape: [Int], values: [Float])] {
        [("head_mix", [p.heads, p.heads], p.headMix), ("ffn_in", [p.ffnWidth, p.heads], p.ffnIn), ("ffn_in_bias", [p.ffnWidth], p.ffnInBias),
         ("ffn_out", [p.heads, p.ffnWidth], p.ffnOut), ("out_bias", [p.heads], p.outBias),
         ("q_lowrank", [p.heads * p.rank, p.hidden], p.queryLowRank), ("k_lowrank", [p.kvHeads * p.rank, p.hidden], p.keyLowRank),
         ("rope_freqs", [p.kvHeads, p.rank / 2], p.ropeFrequencies)]
    }
}
