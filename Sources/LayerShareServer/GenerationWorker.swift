import Foundation
import LayerShare

/// Owns the model runner: one thread takes jobs in arrival order (FIFO) and runs each from an empty
/// KV cache, so a request's output depends only on the request, never on those before it.
/// The runner is not thread-safe; nothing else touches it.
public final class GenerationWorker: @unchecked Sendable {
    private let generator: Generator
    private let condition = NSCondition()
    private var queue: [GenerationJob] = []
    private var running: GenerationJob?
    private var stopping = false
    private var thread: Thread?
    private let finished = DispatchSemaphore(value: 0)

    /// Context length of the runner; a prompt must leave at least one position for the reply.
    public var capacity: Int { generator.runner.capacity }

    public init(generator: Generator) {
        self.generator = generator
    }

    public func start() {
        let thread = Thread { [self] in
            while let job = next() { run(job) }
            finished.signal()
        }
        thread.name = "layershare-generation"
        thread.stackSize = 16 << 20
        self.thread = thread
        thread.start()
    }

    /// Jobs waiting plus the one running.
    var depth: Int { condition.withLock { queue.count + (running == nil ? 0 : 1) } }

    /// Queues `job`, or returns false when `limit` jobs are already waiting or the worker is stopping.
    func submit(_ job: GenerationJob, limit: Int) -> Bool {
        condition.withLock {
            guard !stopping, queue.count < limit else { return false }
            queue.append(job)
            condition.signal()
            return true
        }
    }

    /// Cancels what is queued, lets the running job see its cancellation, and waits for the thread.
    public func stop() {
        let pending: [GenerationJob] = condition.withLock {
            stopping = true
            defer { queue.removeAll() }
            running?.cancel()
            condition.signal()
            return queue
        }
        for job in pending { job.send(.failed("the server is shutting down")) }
        if thread != nil { finished.wait() }
    }

    private func next() -> GenerationJob? {
        condition.withLock {
            running = nil
            while queue.isEmpty && !stopping { condition.wait() }
            guard !stopping else { return nil }
            running = queue.removeFirst()
            return running
        }
    }

    private func run(_ job: GenerationJob) {
        guard !job.isCancelled else {
            job.send(.failed("cancelled before it started, nothing generated"))
            return
        }
        generator.runner.reset()
        var sampler = job.sampler
        var watch = StopText(job.stops)
        do {
            let (tokens, stats) = try generator.generate(promptTokens: job.promptTokens, maxTokens: job.maxTokens,
                                                         sampler: &sampler) { _, piece in
                if job.isCancelled { return false }
                let text = watch.append(piece)
                if !text.isEmpty { job.send(.text(text)) }
                return !watch.stopped
            }
            let tail = watch.finish()
            if !tail.isEmpty && !job.isCancelled { job.send(.text(tail)) }
            let endToken = tokens.last.map { generator.stopIds.contains($0) } ?? false
            job.send(.finished(GenerationResult(promptTokens: stats.promptTokens, completionTokens: stats.generatedTokens,
                                                finishReason: watch.stopped || endToken ? .stop : .length)))
        } catch {
            job.send(.failed("\(error)"))
        }
    }
}
