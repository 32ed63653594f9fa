import Foundation
import LayerShare
import ModelFormats
import XCTest

/// Shared Attention against straightforward references.
final class SharingAttentionTests: XCTestCase {
    /// Layer 27 of a 27-28 span (source 26), from the prefill path, equals a Double reference that
    /// materialises layer 26's full probability matrix and multiplies it by layer 27's own V.
    func testSharedLayerEqualsMaterialisedProbabilityReference() throws {
        let model = try SharedModel.model()
        let h = model.hyper
        let specs = try SharingPlan.sharedAttention(spans: [27...28], model: model).layerSpecs(for: h)
        let tokens = Array(model.tokenizer.encode(SharingTestSupport.prompt).prefix(12))
        let n = tokens.count
        let backend = CPUBackend()
        var sourceProbabilities: [Float] = []
        backend.attentionObserver = { layer, p, heads, rows, keys in
            if layer == 26 { sourceProbabilities = Array(p) }
            XCTAssertEqual(heads * rows * keys, heads * n * n)
        }
        let transformer = try Transformer(backend: backend, weights: model.weights, capacity: 32, specs: specs)
        var hidden: [Int: [Float]] = [:]
        try transformer.forward(tokens, logits: .none, hidden: { hidden[$0] = $1 })
        XCTAssertEqual(sourceProbabilities.count, h.heads * n * n)

        let expected = referenceSharedLayer(model: model, layer: 27, input: hidden[26]!, probabilities: sourceProbabilities, n: n)
        let diff = TensorDifference(name: "layer 27", test: hidden[27]!, reference: expected.map(Float.init))
        print("SA layer 27 vs materialised reference: abs \(diff.maxAbsolute) rel \(diff.maxRelative)")
        XCTAssertLessThan(diff.maxRelative, 1e-5)
    }

    /// Decode (probability rows emitted by the source) and prefill (fused attention re-run with the
    /// source's Q/K and own V) agree; the plan really changes the output.
    func testDecodeAndPrefillPathsAgree() throws {
        let model = try SharedModel.model()
        let tokens = Array(model.tokenizer.encode(SharingTestSupport.prompt).prefix(16))
        let specs = try SharingPlan.sharedAttention(spans: [20...23, 25...28], model: model).layerSpecs(for: model.hyper)
        func paths(_ specs: [LayerSpec]?) throws -> (prefill: [Float], decode: [Float]) {
            let prefill = try SharingTestSupport.runner(model, .cpu, specs: specs).forward(tokens, logits: .all)
            let runner = try SharingTestSupport.runner(model, .cpu, specs: specs)
            var decode: [Float] = []
            for t in tokens { decode += try runner.forward([t], logits: .last) }
            return (prefill, decode)
        }
        let shared = try paths(specs)
        let base = try paths(nil)
        let sharedDiff = TensorDifference(name: "SA", test: shared.decode, reference: shared.prefill)
        let baseDiff = TensorDifference(name: "baseline", test: base.decode, reference: base.prefill)
        print("decode vs prefill: SA rel \(sharedDiff.maxRelative), baseline rel \(baseDiff.maxRelative)")
        XCTAssertLessThan(sharedDiff.maxRelative, 1e-5)
        let effect = TensorDifference(name: "effect", test: shared.prefill, reference: base.prefill)
        XCTAssertGreaterThan(effect.maxRelative, 1e-3, "the SA plan did not change the logits")
    }

    func testSharedAttentionVulkanMatchesCPU() throws {
        let model = try SharedModel.model()
        let tokens = Array(model.tokenizer.encode(SharingTestSupport.prompt).prefix(20))
        let specs = try SharingPlan.sharedAttention(spans: [20...23, 25...28], model: model).layerSpecs(for: model.hyper)
        let device = try VulkanDevice()
        let gpu = try SharingTestSupport.runner(model, .vulkan, specs: specs, maxChunk: 8, device: device)
        let cpu = try SharingTestSupport.runner(model, .cpu, specs: specs, maxChunk: 8)
        let report = try BackendComparison.run(test: gpu, reference: cpu, prompt: tokens, greedyTokens: 16)
        print("SA vulkan vs cpu: logits rel \(report.logits!.maxRelative), greedy \(report.greedyAgreements)/\(report.greedySteps)")
        XCTAssertLessThan(report.logits!.maxRelative, 1e-4)
        for d in report.layers { XCTAssertLessThan(d.maxRelative, 1e-4, d.name) }
        XCTAssertEqual(report.greedyAgreements, report.greedySteps)
    }

    /// One block in Double: x + Wo·(P·V) then the SwiGLU MLP, with P [heads, n, n] given.
    private func referenceSharedLayer(model: LoadedModel, layer l: Int, input: [Float], probabilities p: [Float], n: Int) -> [Double] {
        let h = model.hyper
        func weight(_ name: String) -> (values: [Float], rows: Int, cols: Int) {
            let w = try! model.weights.weight(name)
            return (w.toFloat(), w.rows, w.cols)
        }
        func rmsnorm(_ x: [Double], _ w: [Float]) -> [Double] {
            var out = [Double](repeating: 0, count: x.count)
            for r in 0..<n {
                let row = x[(r * h.hiddenSize)..<((r + 1) * h.hiddenSize)]
                let scale = 1 / (row.reduce(0) { $0 + $1 * $1 } / Double(h.hiddenSize) + Double(h.rmsEps)).squareRoot()
                for i in 0..<h.hiddenSize { out[r * h.hiddenSize + i] = x[r * h.hiddenSize + i] * scale * Double(w[i]) }
            }
            return out
        }
        func matmul(_ x: [Double], _ w: (values: [Float], rows: Int, cols: Int)) -> [Double] {
            var y = [Double](repeating: 0, count: n * w.rows)
            for r in 0..<n {
                for o in 0..<w.rows {
                    var s = 0.0
                    for i in 0..<w.cols { s += x[r * w.cols + i] * Double(w.values[o * w.cols + i]) }
                    y[r * w.rows + o] = s
                }
            }
            return y
        }
        typealias N = LlamaTensorName
        var x = input.map(Double.init)
        let normed = rmsnorm(x, weight(N.attnNorm(l)).values)
        let v = matmul(normed, weight(N.attnV(l)))  // [n, kvHeads·headDim]
        var attn = [Double](repeating: 0, count: n * h.qSize)
        for head in 0..<h.heads {
            let g = head / h.groupSize  // GQA: query head → kv head
            for i in 0..<n {
                for k in 0..<n {
                    let prob = Double(p[(head * n + i) * n + k])
                    for d in 0..<h.headDim { attn[i * h.qSize + head * h.headDim + d] += prob * v[k * h.kvSize + g * h.headDim + d] }
                }
            }
        }
        let o = matmul(attn, weight(N.attnOutput(l)))
        for i in 0..<x.count { x[i] += o[i] }
        let normed2 = rmsnorm(x, weight(N.ffnNorm(l)).values)
        let gate = matmul(normed2, weight(N.ffnGate(l))), up = matmul(normed2, weight(N.ffnUp(l)))
        let act = zip(gate, up).map { g, u in g / (1 + exp(-g)) * u }
        let down = matmul(act, weight(N.ffnDown(l)))
        for i in 0..<x.count { x[i] += down[i] }
        return x
    }
}
