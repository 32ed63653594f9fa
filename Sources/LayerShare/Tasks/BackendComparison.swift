import Foundation

/// Differences between two runs of the same tokens: `test` (e.g. Vulkan) against `reference` (CPU).
public struct TensorDifference: Sendable {
    public let name: String
    public let maxAbsolute: Double
    /// max |test − ref| / max |ref|: scale-free, and stable where single entries of ref are near 0.
    public let maxRelative: Double

    public init(name: String, test: [Float], reference: [Float]) {
        precondition(test.count == reference.count, "compared tensors differ in size")
        var maxAbs = 0.0
        var refMax = 0.0
        for i in 0..<test.count {
            let d = abs(Double(test[i]) - Double(reference[i]))
            if d > maxAbs || d.isNaN { maxAbs = d.isNaN ? .infinity : d }
            refMax = max(refMax, abs(Double(reference[i])))
        }
        self.name = name
        maxAbsolute = maxAbs
        maxRelative = refMax > 0 ? maxAbs / refMax : maxAbs
    }
}

public struct ComparisonReport: Sendable {
    public var layers: [TensorDifference] = []
    public var logits: TensorDifference?
    public var greedySteps = 0
    public var greedyAgreements = 0
    public var firstDisagreement: Int?
    /// First layer whose hidden state holds NaN or ±Inf, per side (nil: all finite).
    public var firstNonFiniteLayer: (test: Int?, reference: Int?) = (nil, nil)
    public var agreement: Double { greedySteps == 0 ? 1 : Double(greedyAgreements) / Double(greedySteps) }
}

/// Runs two runners on the same prompt, layer by layer, then teacher-forces the reference's greedy
/// continuation through both and counts how often their top-1 tokens agree.
public enum BackendComparison {
    public static func run(test: ModelRunner, reference: ModelRunner, prompt: [Int], greedyTokens: Int) throws -> ComparisonReport {
        var report = ComparisonReport()
        test.reset(); reference.reset()
        var testHidden: [[Float]] = []
        var refHidden: [[Float]] = []
        let testLogits = try test.forward(prompt, logits: .all, hidden: { testHidden.append($1) }, logitsSink: nil)
        let refLogits = try reference.forward(prompt, logits: .all, hidden: { refHidden.append($1) }, logitsSink: nil)
        // Hidden states arrive per chunk and layer; regroup into per-layer tensors over all rows.
        let layers = test.hyper.layers
        func perLayer(_ chunks: [[Float]]) -> [[Float]] {
            var out = [[Float]](repeating: [], count: layers)
            for (i, c) in chunks.enumerated() { out[i % layers] += c }
            return out
        }
        let t = perLayer(testHidden), r = perLayer(refHidden)
        for l in 0..<layers { report.layers.append(TensorDifference(name: "layer \(l)", test: t[l], reference: r[l])) }
        report.logits = TensorDifference(name: "logits", test: testLogits, reference: refLogits)
        report.firstNonFiniteLayer = (t.firstIndex { !$0.allSatisfy(\.isFinite) }, r.firstIndex { !$0.allSatisfy(\.isFinite) })

        let vocab = test.hyper.vocabSize
        var refRow = Array(refLogits.suffix(vocab))
        var testRow = Array(testLogits.suffix(vocab))
        let steps = min(greedyTokens, test.capacity - test.position, reference.capacity - reference.position)
        for step in 0..<steps {
            let refTop = refRow.withUnsafeBufferPointer { Sampler.argmax($0) }
            let testTop = testRow.withUnsafeBufferPointer { Sampler.argmax($0) }
            report.greedySteps += 1
            if refTop == testTop { report.greedyAgreements += 1 } else if report.firstDisagreement == nil { report.firstDisagreement = step }
            if step + 1 == steps { break }
            refRow = try reference.forward([refTop], logits: .last)
            testRow = try test.forward([refTop], logits: .last)
        }
        return report
    }
}
