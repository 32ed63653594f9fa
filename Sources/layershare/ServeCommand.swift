import ArgumentParser
import Dispatch
import Foundation
import LayerShare
import LayerShareServer

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the model over an OpenAI-compatible HTTP API.",
        discussion: """
        Endpoints: POST /v1/chat/completions (messages, rendered with the model's ChatML template as generate --chat does), POST /v1/completions (prompt: a string, a one-string array or token ids), GET /v1/models, GET /v1/models/ID, GET /health. Request fields: model, messages / prompt, max_tokens (max_completion_tokens), temperature, top_p, seed, stop (a string or a list), stream, stream_options.include_usage; also top_k, min_p and repeat_penalty. Responses carry usage counts (completion tokens include the end token when one ended the text); "stream": true answers server-sent events (data: {chunk} lines, then data: [DONE]).

        One model, one request at a time: requests wait in arrival order (no batching) and each starts from an empty KV cache, so a request with a seed gives the same text as layershare generate with the same prompt, options and --seed. A request whose client disconnects is cancelled (before it starts, or at the next token) and the next one proceeds. Without a seed, the seed comes from the clock, as in generate. The sampling options below are the defaults for requests that do not set those fields; --plan applies to every request.

        Bad requests get OpenAI-style JSON errors ({"error": {"message", "type", "param", "code"}}): 400 for malformed JSON, unknown fields, wrong types or values, an empty prompt, and a prompt that does not fit the context (the message names the token counts); 404 for an unknown path or a model name other than the served one (--model-id); 405 for a known path with the wrong method; 413 for a body over --max-body-bytes; 422 for OpenAI features this server does not do (n > 1, logprobs, tools, penalties, logit_bias…; their "off" values are accepted); 503 when --queue-limit requests are already waiting; 500 if generation fails. max_tokens past the end of the context is clipped there (finish_reason "length"); without max_tokens a request gets --max-tokens.

        Binds 127.0.0.1 by default (use --host 0.0.0.0 to listen on every interface). Prints the listening address at start and one line per request on stderr (method, path, status, prompt+completion tokens, seconds). SIGINT or SIGTERM stops accepting connections, lets requests in flight finish, then exits.
        """
    )

    @OptionGroup var options: ModelOptions
    @OptionGroup var sampling: SamplingOptions

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(parsing: .unconditional, help: "Port to listen on (0: any free port, printed at start).")
    var port = 8080

    @Option(name: [.customShort("n"), .customLong("max-tokens")], parsing: .unconditional,
            help: "Tokens to generate for a request that gives no max_tokens.")
    var maxTokens = 128

    @Option(name: .customLong("model-id"), help: "The model's name in /v1/models and requests (default: the model file's name without .gguf).")
    var modelID: String?

    @Option(name: .customLong("max-body-bytes"), parsing: .unconditional, help: "Largest request body accepted; larger ones get 413.")
    var maxBodyBytes = 1 << 20

    @Option(name: .customLong("queue-limit"), parsing: .unconditional, help: "Requests that may wait behind the running one; more get 503.")
    var queueLimit = 64

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535, got \(port)") }
        try requirePositive(maxTokens, "--max-tokens")
        try requirePositive(maxBodyBytes, "--max-body-bytes")
        try requirePositive(queueLimit, "--queue-limit")
        if let modelID, modelID.isEmpty { throw ValidationError("--model-id must not be empty") }
    }

    func run() throws {
        _ = try sampling.sampler(seed: 0)  // bad sampling defaults fail before the slow load
        let (model, runner) = try options.loadRunner()
        let generator = Generator(runner: runner, tokenizer: model.tokenizer)
        let defaults = SamplingDefaults(temperature: sampling.temperature, topK: sampling.topK, topP: sampling.topP,
                                        minP: sampling.minP, repeatPenalty: sampling.repeatPenalty, repeatLastN: sampling.repeatLastN)
        var settings = ServerSettings(modelID: modelID ?? Self.defaultID(path: model.path), sampling: defaults,
                                      template: model.chatTemplate)
        settings.host = host
        settings.port = port
        settings.defaultMaxTokens = maxTokens
        settings.maxBodyBytes = maxBodyBytes
        settings.queueLimit = queueLimit
        let id = settings.modelID
        let finished = DispatchSemaphore(value: 0)
        let outcome = ServeOutcome()
        Task {
            do {
                try await CompletionServer.run(generator: generator, settings: settings) { address in
                    note("listening on \(address) (model \"\(id)\"; POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health)")
                }
            } catch {
                outcome.error = error
            }
            finished.signal()
        }
        finished.wait()
        if let error = outcome.error { throw ValidationError("cannot serve on \(host):\(port): \(error)") }
        note("server stopped")
    }

    /// "SmolLM2-135M-Instruct.Q4_1" for …/SmolLM2-135M-Instruct.Q4_1.gguf; a directory's own name.
    static func defaultID(path: String) -> String {
        let name = URL(fileURLWithPath: path).lastPathComponent
        return name.hasSuffix(".gguf") ? String(name.dropLast(5)) : name
    }
}

/// The server task's error, handed to the waiting main thread.
private final class ServeOutcome: @unchecked Sendable {
    var error: Error?
}
