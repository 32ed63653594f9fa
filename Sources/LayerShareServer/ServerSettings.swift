import LayerShare

/// Sampling used when a request does not say; `layershare serve` takes them from the same options
/// (and defaults) as `layershare generate`, so a request and a `generate` run agree.
public struct SamplingDefaults: Sendable {
    public var temperature: Float
    public var topK: Int
    public var topP: Float
    public var minP: Float
    public var repeatPenalty: Float
    public var repeatLastN: Int

    public init(temperature: Float, topK: Int, topP: Float, minP: Float, repeatPenalty: Float, repeatLastN: Int) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.minP = minP
        self.repeatPenalty = repeatPenalty
        self.repeatLastN = repeatLastN
    }
}

public struct ServerSettings: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    /// The id `/v1/models` lists; requests naming another model get 404.
    public var modelID: String
    /// max_tokens when a request gives none.
    public var defaultMaxTokens = 128
    public var maxBodyBytes = 1 << 20
    /// Jobs that may wait behind the running one; more get 503.
    public var queueLimit = 64
    public var sampling: SamplingDefaults
    /// Chat prompt rendering (the model's ChatML template).
    public var template: ChatTemplate

    public init(modelID: String, sampling: SamplingDefaults, template: ChatTemplate) {
        self.modelID = modelID
        self.sampling = sampling
        self.template = template
    }
}

extension RequestFields {
    /// The sampler for this request: its own temperature / top_p / top_k / min_p / repeat_penalty
    /// over the server's defaults, and its seed (else one from the clock, as `generate` does).
    func sampler(defaults d: SamplingDefaults, clockSeed: UInt64) throws -> Sampler {
        do {
            return try Sampler(temperature: temperature ?? d.temperature, topK: topK ?? d.topK, topP: topP ?? d.topP,
                               minP: minP ?? d.minP, seed: seed ?? clockSeed,
                               repeatPenalty: repeatPenalty ?? d.repeatPenalty, repeatLastN: d.repeatLastN)
        } catch let e as SamplerError {
            let param: String
            switch e {
            case .invalidTemperature: param = "temperature"
            case .invalidTopK: param = "top_k"
            case .invalidTopP: param = "top_p"
            case .invalidMinP: param = "min_p"
            case .invalidRepeatPenalty: param = "repeat_penalty"
            case .invalidRepeatLastN: param = "repeat_last_n"
            }
            throw APIError.invalid("\(param): \(e)", param: param)
        }
    }
}
