import Foundation

/// How a model stretches RoPE's frequencies for long contexts. Both forms divide pair i's frequency
/// theta^(−2i/headDim) by a factor, so the engine carries one list of per-pair divisors (`divisors`).
public struct RopeScaling: Sendable, Codable, Equatable {
    /// Linear scaling: every frequency is divided by this (positions squeezed; 1 = none).
    public var linearFactor: Float
    /// Pair i's frequency is divided by `frequencyFactors[i]` (headDim/2 values): Llama 3.1's
    /// `rope_freqs.weight`, or computed from Hugging Face's `rope_type: llama3`. nil: all 1.
    public var frequencyFactors: [Float]?

    public init(linearFactor: Float = 1, frequencyFactors: [Float]? = nil) {
        self.linearFactor = linearFactor
        self.frequencyFactors = frequencyFactors
    }

    public static let none = RopeScaling()

    public var isNone: Bool { linearFactor == 1 && frequencyFactors == nil }

    /// Per-pair divisors of the frequencies for `pairs` pairs, nil when nothing is scaled (as llama.cpp
    /// computes the angle: pos · freq_scale · theta^(−2i/d) / freq_factor[i], freq_scale = 1/factor).
    public func divisors(pairs: Int) -> [Float]? {
        if isNone { return nil }
        return (0..<pairs).map { i in (frequencyFactors?[i] ?? 1) * linearFactor }
    }

    /// Llama 3's long-context rule (Hugging Face `rope_type: llama3`, which llama.cpp's converter
    /// turns into `rope_freqs.weight`): wavelengths shorter than original/highFreqFactor keep their
    /// frequency, those longer than original/lowFreqFactor are divided by `factor`, and the band
    /// between blends the two smoothly.
    public static func llama3Factors(headDim: Int, theta: Float, factor: Float, lowFreqFactor: Float, highFreqFactor: Float,
                                     originalContext: Int) -> [Float] {
        let lowWavelength = Double(originalContext) / Double(lowFreqFactor)
        let highWavelength = Double(originalContext) / Double(highFreqFactor)
        return (0..<(headDim / 2)).map { i in
            let frequency = pow(Double(theta), -2 * Double(i) / Double(headDim))
            let wavelength = 2 * Double.pi / frequency
            if wavelength < highWavelength { return 1 }
            if wavelength > lowWavelength { return factor }
            let smooth = (Double(originalContext) / wavelength - Double(lowFreqFactor)) / Double(highFreqFactor - lowFreqFactor)
            return Float(1 / ((1 - smooth) / Double(factor) + smooth))
        }
    }

    /// Rejects factors that would make an angle infinite, NaN or negative, naming where they came from.
    public func validate(pairs: Int, factorSource: String, factorsSource: String) throws {
        guard linearFactor.isFinite, linearFactor > 0 else {
            throw ModelError.invalidHyperParameter(name: factorSource, value: "\(linearFactor)",
                                                   reason: "the RoPE scaling factor must be finite and positive")
        }
        guard let f = frequencyFactors else { return }
        guard f.count == pairs else {
            throw ModelError.invalidHyperParameter(name: factorsSource, value: "\(f.count) factors",
                                                   reason: "RoPE frequency factors must number headDim/2 = \(pairs)")
        }
        if let i = f.firstIndex(where: { !($0.isFinite && $0 > 0) }) {
            throw ModelError.invalidHyperParameter(name: factorsSource, value: "\(f[i]) at pair \(i)",
                                                   reason: "RoPE frequency factors must be finite and positive")
        }
    }
}

extension RopeScaling {
    /// llama.cpp's reading of a GGUF: `{arch}.rope.scaling.type` (absent means linear), with
    /// `.factor` (or the older `{arch}.rope.scale_linear`) dividing the frequencies unless the type
    /// is `none`, and the `rope_freqs.weight` tensor's per-pair factors whatever the type. YaRN and
    /// LongRoPE change more than the frequencies (attention factors, per-length tables) and are
    /// refused by name rather than computed wrongly.
    public init(gguf: GGUFFile, architecture arch: String, headDim: Int) throws {
        let p = arch + ".rope."
        let type = try gguf.optionalString(p + "scaling.type") ?? "linear"
        var factor = try gguf.optionalFloat(p + "scaling.factor") ?? 0
        if factor == 0 { factor = try gguf.optionalFloat(p + "scale_linear") ?? 0 }
        switch type {
        case "none": self.init()
        case "linear": self.init(linearFactor: factor == 0 ? 1 : factor)
        default:
            throw ModelError.invalidHyperParameter(name: p + "scaling.type", value: type,
                                                   reason: "RoPE scaling '\(type)' is not supported (supported: none, linear, and rope_freqs factors)")
        }
        if let t = gguf.tensor(named: "rope_freqs.weight") {
            guard t.shape == [headDim / 2], [GGMLType.f32, .f16, .bf16].contains(t.type) else {
                throw ModelError.invalidHyperParameter(name: "rope_freqs.weight", value: "\(t.type) \(t.shape)",
                                                       reason: "expected \(headDim / 2) float factors (headDim/2)")
            }
            frequencyFactors = Dequantize.row(t.type, gguf.bytes(of: t).baseAddress!, count: headDim / 2)
        }
        try validate(pairs: headDim / 2, factorSource: p + "scaling.factor", factorsSource: "rope_freqs.weight")
    }
}

extension RopeScaling {
    /// A Hugging Face `config.json`'s `rope_scaling` (`rope_type`, or the older `type`): `default`,
    /// `linear` (`factor`) and `llama3` (`factor`, `low_freq_factor`, `high_freq_factor`,
    /// `original_max_position_embeddings`); any other type is refused by name.
    init(huggingFace value: Any?, theta: Float, headDim: Int, path: String) throws {
        guard let value, !(value is NSNull) else { self.init(); return }
        let key = "rope_scaling"
        guard let d = value as? [String: Any] else { throw ModelError.invalidConfig(path: path, key: key, reason: "is not an object") }
        func number(_ name: String, default fallback: Double? = nil) throws -> Float {
            guard let v = d[name], !(v is NSNull) else {
                if let fallback { return Float(fallback) }
                throw ModelError.invalidConfig(path: path, key: "\(key).\(name)", reason: "is missing")
            }
            guard let x = JSON.double(v), x.isFinite, x > 0 else {
                throw ModelError.invalidConfig(path: path, key: "\(key).\(name)", reason: "must be a finite positive number")
            }
            return Float(x)
        }
        let type = (d["rope_type"] ?? d["type"]) as? String ?? "default"
        switch type {
        case "default": self.init()
        case "linear": self.init(linearFactor: try number("factor"))
        case "llama3":
            let low = try number("low_freq_factor", default: 1), high = try number("high_freq_factor", default: 4)
            guard high > low else {
                throw ModelError.invalidConfig(path: path, key: key, reason: "has high_freq_factor \(high) not above low_freq_factor \(low)")
            }
            let original = try number("original_max_position_embeddings", default: 8192)
            guard original <= Float(1 << 24) else {  // the context limit; also keeps Int(original) from trapping
                throw ModelError.invalidConfig(path: path, key: "\(key).original_max_position_embeddings", reason: "is larger than 2^24")
            }
            self.init(frequencyFactors: Self.llama3Factors(headDim: headDim, theta: theta, factor: try number("factor"),
                                                           lowFreqFactor: low, highFreqFactor: high, originalContext: Int(original)))
        default:
            throw ModelError.invalidConfig(path: path, key: key,
                                           reason: "has type '\(type)'; supported RoPE scaling types are default, linear and llama3")
        }
    }
}
