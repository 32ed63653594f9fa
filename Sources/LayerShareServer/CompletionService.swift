import Foundation
import Hummingbird
import LayerShare
import ModelFormats
import NIOCore

/// The two generation endpoints: a request is checked and tokenized here (so every error is
/// answered before any output), queued for the worker, then answered whole or streamed.
final class CompletionService: Sendable {
    let worker: GenerationWorker
    let tokenizer: Tokenizer
    let settings: ServerSettings
    /// When the server started (`created` of the model entry).
    let started = Int(Date().timeIntervalSince1970)

    init(worker: GenerationWorker, tokenizer: Tokenizer, settings: ServerSettings) {
        self.worker = worker
        self.tokenizer = tokenizer
        self.settings = settings
    }

    func chat(_ body: Data, context: ServerContext, log: RequestLog) async throws -> Response {
        let request = try decodeRequest(ChatRequest.self, from: body)
        let text = settings.template.render(messages: request.messages.map { ($0.role, $0.content) }, addGenerationPrompt: true)
        return try await start(fields: request.fields, prompt: tokenizer.encode(text), chat: true, context: context, log: log)
    }

    func completion(_ body: Data, context: ServerContext, log: RequestLog) async throws -> Response {
        let request = try decodeRequest(CompletionRequest.self, from: body)
        let tokens: [Int]
        switch request.prompt {
        case .text(let text): tokens = tokenizer.encode(text)
        case .tokens(let ids):
            if let bad = ids.first(where: { $0 < 0 || $0 >= tokenizer.vocabSize }) {
                throw APIError.invalid("prompt: token id \(bad) is outside the vocabulary (0..<\(tokenizer.vocabSize))", param: "prompt")
            }
            tokens = ids
        }
        return try await start(fields: request.fields, prompt: tokens, chat: false, context: context, log: log)
    }

    private func start(fields: RequestFields, prompt: [Int], chat: Bool, context: ServerContext, log: RequestLog) async throws -> Response {
        if let model = fields.model, model != settings.modelID {
            throw APIError(.notFound, "the model \"\(model)\" does not exist; this server serves \"\(settings.modelID)\" (GET /v1/models)",
                           param: "model", code: "model_not_found")
        }
        guard !prompt.isEmpty else { throw APIError.invalid("the prompt is empty: nothing to condition on", param: chat ? "messages" : "prompt") }
        let capacity = worker.capacity
        guard prompt.count < capacity else {
            throw APIError.invalid("the prompt has \(prompt.count) tokens, but the context holds \(capacity) (--ctx) and keeps one "
                                   + "position for the reply: at most \(capacity - 1) prompt tokens fit",
                                   param: chat ? "messages" : "prompt", code: "context_length_exceeded")
        }
        let maxTokens = fields.maxTokens ?? settings.defaultMaxTokens
        guard maxTokens >= 1 else { throw APIError.invalid("max_tokens must be at least 1, got \(maxTokens)", param: "max_tokens") }
        // More than the context has room for is clipped: generation ends there with finish_reason "length".
        let sampler = try fields.sampler(defaults: settings.sampling, clockSeed: UInt64(Date().timeIntervalSince1970 * 1000))
        let channel = context.channel
        let job = GenerationJob(promptTokens: prompt, maxTokens: maxTokens, sampler: sampler, stops: fields.stop,
                                clientGone: { !channel.isActive })
        guard worker.submit(job, limit: settings.queueLimit) else {
            throw APIError(.serviceUnavailable, "the server is busy: \(settings.queueLimit) requests are already waiting (--queue-limit)",
                           type: "server_error", code: "server_busy")
        }
        let shape = ResponseShape(chat: chat, model: settings.modelID, includeUsage: fields.includeUsage)
        return fields.stream ? stream(job, shape: shape, log: log) : try await whole(job, shape: shape, log: log)
    }

    /// Waits for the whole text, then answers one JSON object (500 with an error if generation failed).
    private func whole(_ job: GenerationJob, shape: ResponseShape, log: RequestLog) async throws -> Response {
        var text = ""
        var result: GenerationResult?
        var failure = "generation ended without a result"
        for await event in job.events {
            switch event {
            case .text(let piece): text += piece
            case .finished(let r): result = r
            case .failed(let message): failure = message
            }
        }
        guard let result else {
            // The responder logs the message.
            throw APIError.internalError(job.isCancelled ? "client went away: \(failure)" : failure)
        }
        if job.isCancelled { log.note("client went away") }
        log.record(promptTokens: result.promptTokens, completionTokens: result.completionTokens)
        let object = shape.object(kind: shape.chat ? .chat : .text, text: text, role: true, finish: result.finishReason,
                                  usage: Usage(promptTokens: result.promptTokens, completionTokens: result.completionTokens))
        return jsonResponse(object.jsonData())
    }

    /// Server-sent events as the text comes: one chunk per piece, a last chunk with finish_reason,
    /// the usage chunk if asked for, then `[DONE]`. A failed write (client gone) cancels the job.
    private func stream(_ job: GenerationJob, shape: ResponseShape, log: RequestLog) -> Response {
        log.streaming = true
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            defer { job.cancel() }
            let kind: CompletionObject.Kind = shape.chat ? .chatChunk : .text
            func send(_ object: CompletionObject) async throws {
                try await writer.write(ByteBuffer(bytes: SSE.event(object.jsonData())))
            }
            if shape.chat { try await send(shape.object(kind: kind, text: "", role: true, finish: nil, usage: nil)) }
            for await event in job.events {
                switch event {
                case .text(let piece):
                    try await send(shape.object(kind: kind, text: piece, role: false, finish: nil, usage: nil))
                case .finished(let r):
                    log.record(promptTokens: r.promptTokens, completionTokens: r.completionTokens)
                    try await send(shape.object(kind: kind, text: shape.chat ? nil : "", role: false, finish: r.finishReason, usage: nil))
                    if shape.includeUsage {
                        try await send(shape.usageChunk(kind: kind, Usage(promptTokens: r.promptTokens, completionTokens: r.completionTokens)))
                    }
                case .failed(let message):
                    log.note("failed: \(message)")
                    try await writer.write(ByteBuffer(bytes: SSE.event(APIError.internalError(message).json)))
                }
            }
            if job.isCancelled { log.note("client went away") }
            try await writer.write(ByteBuffer(bytes: SSE.done))
            try await writer.finish(nil)
        })
    }
}

/// What every object of one response shares: its id, time, model and kind.
struct ResponseShape: Sendable {
    let chat: Bool
    let model: String
    let includeUsage: Bool
    let id: String
    let created = Int(Date().timeIntervalSince1970)

    init(chat: Bool, model: String, includeUsage: Bool) {
        self.chat = chat
        self.model = model
        self.includeUsage = includeUsage
        id = (chat ? "chatcmpl-" : "cmpl-") + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(24)
    }

    func object(kind: CompletionObject.Kind, text: String?, role: Bool, finish: FinishReason?, usage: Usage?) -> CompletionObject {
        CompletionObject(kind: kind, id: id, created: created, model: model,
                         choice: .init(text: text, role: role, finishReason: finish), usage: usage,
                         usageNull: includeUsage && kind != .chat)
    }

    func usageChunk(kind: CompletionObject.Kind, _ usage: Usage) -> CompletionObject {
        CompletionObject(kind: kind, id: id, created: created, model: model, choice: nil, usage: usage, usageNull: false)
    }
}
