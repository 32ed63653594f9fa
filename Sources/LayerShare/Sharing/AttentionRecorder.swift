import Foundation
import ModelFormats

/// Runs the model on the CPU backend and hands over every layer's full causal attention maps for one
/// sequence at a time: a buffer [layers, heads, n, n] (row i = query i, zeros above the diagonal).
final class AttentionRecorder {
    let transformer: Transformer<CPUBackend>
    let layers: Int
    let heads: Int
    let maxTokens: Int
    private var maps: UnsafeMutablePointer<Float>
    private var currentRows = 0

    init(model: LoadedModel, maxTokens: Int) throws {
        try Self.checkMemory(model.hyper, tokens: maxTokens)
        let backend = CPUBackend()
        // One chunk per sequence, so each layer's attention is a single [n, n] call from position 0.
        transformer = try Transformer(backend: backend, weights: model.weights, capacity: maxTokens, maxChunk: maxTokens)
        layers = model.hyper.layers
        heads = model.hyper.heads
        self.maxTokens = maxTokens
        maps = .allocate(capacity: layers * heads * maxTokens * maxTokens)
        backend.attentionObserver = { [unowned self] layer, p, heads, rows, keys in
            precondition(rows == keys && rows == self.currentRows && heads == self.heads, "analysis expects one full causal chunk per layer")
            guard layer >= 0 && layer < self.layers else { return }
            let n = rows
            // Compact [heads, n, n] block of this layer (the whole sequence fits one chunk).
            (self.maps + layer * heads * n * n).update(from: p.baseAddress!, count: heads * n * n)
        }
    }

    deinit { maps.deallocate() }

    /// The maps grow with the square of the sequence: check them against the host before allocating.
    static func checkMemory(_ h: LlamaHyperParameters, tokens n: Int, available: Int = HostMemory.available()) throws {
        let perSquare = h.layers * h.heads * 4
        let (square, o1) = n.multipliedReportingOverflow(by: n)
        let (bytes, o2) = square.multipliedReportingOverflow(by: perSquare)
        guard o1 || o2 || bytes > available else { return }
        var largest = Int(Double(available / perSquare).squareRoot())
        while largest > 0 && largest * largest * perSquare > available { largest -= 1 }
        throw ModelLoadError("attention maps of \(n)-token sequences need \(o1 || o2 ? "more than 8 EiB" : formatBytes(bytes)) "
                             + "(layers × heads × tokens² floats); this machine has \(formatBytes(available)) available: "
                             + "the largest --tokens that fits is \(largest)")
    }

    /// Forwards `tokens` from position 0 and calls `body` with the maps (valid only during the call).
    func record<R>(_ tokens: [Int], _ body: (UnsafePointer<Float>, Int) throws -> R) throws -> R {
        precondition(!tokens.isEmpty && tokens.count <= maxTokens)
        transformer.reset()
        currentRows = tokens.count
        try transformer.forward(tokens, logits: .none)
        return try body(maps, tokens.count)
    }
}
