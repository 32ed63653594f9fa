import ModelFormats
import VulkanCompute

/// The memory a runner will take, checked against what the backend can hold before anything is
/// allocated, so `--ctx` and `--chunk` that do not fit end in a message naming the bytes and the
/// largest value that does fit (instead of an overflow trap or a failed allocation).
struct MemoryPlan {
    /// Bytes of weights on the backend.
    var weights: Int
    /// Bytes per context position: KV cache streams plus emitted probability rows.
    var perPosition: Int
    /// Bytes per prefill row of activations (LM-head logits dominate).
    var perChunkRow: Int
    /// Bytes the backend can hold in all.
    var available: Int
    /// Largest single buffer, with the per-position and per-row sizes of the biggest buffers.
    var maxBuffer = Int.max
    var largestPositionBuffer = 1
    var largestRowBuffer = 1
    /// Where it must fit, for messages: "the device (…)" or "this machine".
    var place: String
    var margin = 64 << 20
    /// The two log-probability tensors of a plan with LiSA layers, at most (`LiSABufferLimit`).
    var logProbabilityBytes = 0

    init(model h: LlamaHyperParameters, specs: [LayerSpec], weights: Int, available: Int, place: String) {
        self.weights = weights
        self.available = available
        self.place = place
        let caches = specs.map { $0.cache(for: h) }
        let emitting = specs.filter { $0.emits == .probabilities }.count
        perPosition = max(1, caches.reduce(0) { $0 + $1.bytesPerToken } + emitting * h.heads * 4)
        perChunkRow = (h.vocabSize + 4 * h.ffnSize + 8 * h.hiddenSize) * 4
        logProbabilityBytes = specs.contains(where: \.emitsLogProbabilities) ? 2 * LiSABufferLimit.bytes : 0
        largestPositionBuffer = max(h.heads, caches.flatMap(\.streams).map(\.rowSize).max() ?? 1) * 4
        largestRowBuffer = max(h.vocabSize, 2 * h.ffnSize, h.qSize + 2 * h.kvSize) * 4
    }

    /// The context and prefill chunk to build: `--ctx` (or the model's, capped to fit) and `--chunk`
    /// (clamped to the context).
    func resolve(context asked: Int?, label: String? = nil, chunk: Int, modelContext: Int, log: (String) -> Void) throws -> (context: Int, chunk: Int) {
        guard chunk > 0 else { throw ModelLoadError("--chunk must be positive, got \(chunk)") }
        if let asked {
            guard asked > 0 else { throw ModelLoadError("\(label ?? "--ctx") must be positive, got \(asked)") }
            if asked > modelContext, label == nil {
                log("note: --ctx \(asked) exceeds the model's trained context \(modelContext); quality may degrade past it")
            }
        }
        let rows = min(chunk, asked ?? modelContext)
        let fixed = try fixedBytes(rows: rows, chunk: chunk)
        let budget = available - fixed
        let fitting = min(budget / perPosition, maxBuffer / largestPositionBuffer)
        let context: Int
        if let asked {
            let (bytes, overflow) = asked.multipliedReportingOverflow(by: perPosition)
            guard !overflow, bytes <= budget, asked <= maxBuffer / largestPositionBuffer else {
                let needs = overflow ? "more than 8 EiB" : formatBytes(bytes)
                throw ModelLoadError("\(label ?? "--ctx \(asked)") needs \(needs) of KV cache (\(formatBytes(perPosition)) per position); "
                                     + "\(place) has room for \(formatBytes(max(0, budget))) after the weights and activations: "
                                     + "the largest \(label == nil ? "--ctx" : "context") that fits is \(max(0, fitting))")
            }
            context = asked
        } else if modelContext > fitting {
            guard fitting >= 16 else {
                throw ModelLoadError("\(place) has room for only \(max(0, fitting)) positions of KV cache after the weights "
                                     + "(\(formatBytes(weights))) and --chunk \(chunk) activations: lower --chunk or pass a small --ctx")
            }
            context = fitting
            log("note: context capped at \(context) tokens (of the model's \(modelContext)) so the KV cache fits \(place)")
        } else {
            context = modelContext
        }
        if chunk > context { log("note: --chunk \(chunk) is larger than the context; prefill runs in chunks of \(context)") }
        return (context, min(chunk, context))
    }

    /// Weights, activations for `rows` prefill rows and a margin; throws when they alone do not fit.
    private func fixedBytes(rows: Int, chunk: Int) throws -> Int {
        let margin = self.margin + logProbabilityBytes
        let largestChunk = max(0, min((available - weights - margin - perPosition) / perChunkRow, maxBuffer / largestRowBuffer))
        guard weights + margin <= available else {
            throw ModelLoadError("the weights need \(formatBytes(weights)) but \(place) has \(formatBytes(available))")
        }
        let (activations, overflow) = rows.multipliedReportingOverflow(by: perChunkRow)
        guard !overflow, activations <= available - weights - margin - perPosition, rows <= maxBuffer / largestRowBuffer else {
            let needs = overflow ? "more than 8 EiB" : formatBytes(activations)
            throw ModelLoadError("--chunk \(chunk) needs \(needs) of activations (\(formatBytes(perChunkRow)) per row) besides "
                                 + "\(formatBytes(weights)) of weights; \(place) has \(formatBytes(available)): "
                                 + "the largest --chunk that fits is \(largestChunk)")
        }
        return weights + activations + margin
    }
}
