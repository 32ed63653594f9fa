import Foundation
import LayerShare

/// What a job reports, in order: text pieces (stop strings already cut), then one end.
enum GenerationEvent: Sendable {
    case text(String)
    case finished(GenerationResult)
    case failed(String)
}

struct GenerationResult: Sendable {
    let promptTokens: Int
    let completionTokens: Int
    let finishReason: FinishReason
}

/// One request's generation, queued for the worker. `cancel()` may come from any thread (the
/// client went away); the worker checks it before starting and before every token.
final class GenerationJob: @unchecked Sendable {
    let promptTokens: [Int]
    let maxTokens: Int
    let sampler: Sampler
    let stops: [String]
    let events: AsyncStream<GenerationEvent>
    private let continuation: AsyncStream<GenerationEvent>.Continuation
    private let lock = NSLock()
    private var cancelledFlag = false
    /// Whether the client's connection has closed (polled: a job waiting or running notices it).
    private let clientGone: @Sendable () -> Bool

    init(promptTokens: [Int], maxTokens: Int, sampler: Sampler, stops: [String], clientGone: @escaping @Sendable () -> Bool = { false }) {
        self.clientGone = clientGone
        self.promptTokens = promptTokens
        self.maxTokens = maxTokens
        self.sampler = sampler
        self.stops = stops
        (events, continuation) = AsyncStream.makeStream(of: GenerationEvent.self)
        // The consumer stopped listening (its task was cancelled, the response is gone).
        continuation.onTermination = { [weak self] reason in
            if case .cancelled = reason { self?.cancel() }
        }
    }

    var isCancelled: Bool { lock.withLock { cancelledFlag } || clientGone() }

    func cancel() { lock.withLock { cancelledFlag = true } }

    func send(_ event: GenerationEvent) {
        continuation.yield(event)
        switch event {
        case .finished, .failed: continuation.finish()
        case .text: break
        }
    }
}
