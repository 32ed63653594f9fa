/// The request fields `/v1/chat/completions` and `/v1/completions` share: how much to generate,
/// how to sample and whether to stream. Values are checked when a job is built (`GenerationSettings`).
struct RequestFields: Sendable {
    var model: String?
    var maxTokens: Int?
    var temperature: Float?
    var topP: Float?
    /// Extensions that llama.cpp's and vLLM's servers accept too; `layershare generate` has them as options.
    var topK: Int?
    var minP: Float?
    var repeatPenalty: Float?
    var seed: UInt64?
    var stop: [String] = []
    var stream = false
    var includeUsage = false

    /// Field names read here, plus those accepted and ignored (they change nothing in the output).
    static let names: Set<String> = ["model", "max_tokens", "temperature", "top_p", "top_k", "min_p", "repeat_penalty", "seed",
                                     "stop", "stream", "stream_options", "user", "metadata", "store"]

    /// Fields of OpenAI's API this server does not implement, with the value(s) that mean "off",
    /// which are accepted: anything else is answered 422 naming the field.
    static let offValues: [String: [JSONValue]] = [
        "n": [.null, .number(1)], "best_of": [.null, .number(1)],
        "presence_penalty": [.null, .number(0)], "frequency_penalty": [.null, .number(0)],
        "logprobs": [.null, .bool(false), .number(0)], "top_logprobs": [.null, .number(0)],
        "echo": [.null, .bool(false)], "suffix": [.null, .string("")],
        "logit_bias": [.null, .object([:])], "response_format": [.null, .object(["type": .string("text")])],
        "tools": [.null, .array([])], "tool_choice": [.null, .string("none")], "functions": [.null, .array([])],
        "function_call": [.null, .string("none")], "parallel_tool_calls": [.null, .bool(false), .bool(true)],
    ]

    init(from c: KeyedDecodingContainer<AnyKey>, maxTokensAlias: String? = nil) throws {
        model = try c.value(String.self, "model")
        maxTokens = try c.value(Int.self, "max_tokens")
        if let alias = maxTokensAlias, let n = try c.value(Int.self, alias) {
            if let m = maxTokens, m != n {
                throw APIError.invalid("max_tokens (\(m)) and \(alias) (\(n)) disagree; give one", param: alias)
            }
            maxTokens = n
        }
        temperature = try c.value(Float.self, "temperature")
        topP = try c.value(Float.self, "top_p")
        topK = try c.value(Int.self, "top_k")
        minP = try c.value(Float.self, "min_p")
        repeatPenalty = try c.value(Float.self, "repeat_penalty")
        seed = try c.value(UInt64.self, "seed")
        stream = try c.value(Bool.self, "stream") ?? false
        switch try c.value(JSONValue.self, "stop") {
        case .string(let s)?: stop = [s]
        case nil, .null?: stop = []
        default:
            guard let list = try? c.value([String].self, "stop") else {
                throw APIError.invalid("stop: expected a string or a list of strings", param: "stop", code: "invalid_type")
            }
            stop = list
        }
        if stop.count > 16 { throw APIError.invalid("stop: at most 16 stop strings, got \(stop.count)", param: "stop") }
        if let options = try c.value(StreamOptions.self, "stream_options") {
            guard stream else { throw APIError.invalid("stream_options is only allowed with stream: true", param: "stream_options") }
            includeUsage = options.includeUsage
        }
        for (name, allowed) in Self.offValues {
            if let v = try c.value(JSONValue.self, name), !allowed.contains(v) {
                throw APIError.unsupported(name, "this value")
            }
        }
    }
}

struct StreamOptions: Decodable {
    let includeUsage: Bool

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        try c.rejectUnknownKeys(["include_usage"], in: "stream_options")
        includeUsage = try c.value(Bool.self, "include_usage") ?? false
    }
}
