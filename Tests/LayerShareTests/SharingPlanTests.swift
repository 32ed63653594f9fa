import Foundation
import LayerShare
import XCTest

/// Plan files: round trip, the empty plan, and rejection of plans that don't fit the model.
final class SharingPlanTests: XCTestCase {
    func testRoundTripAndModes() throws {
        let model = try SharedModel.model()
        let plan = try SharingPlan.sharedAttention(spans: [23...26, 28...28], model: model)
        let path = SharingTestSupport.temporaryPath("plan.json")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try plan.write(to: path)
        let loaded = try SharingPlan.load(path: path, model: model)
        XCTAssertEqual(loaded, plan)
        let specs = try loaded.layerSpecs(for: model.hyper)
        XCTAssertEqual(specs.count, 30)
        for l in 0..<30 {
            let expected: LayerSpec.ScoreSource = (23...26).contains(l) ? .shared(from: 22) : l == 28 ? .shared(from: 27) : .own
            XCTAssertEqual(specs[l].scores, expected, "layer \(l)")
            XCTAssertEqual(specs[l].emits, l == 22 || l == 27 ? .probabilities : .nothing, "layer \(l)")
        }
        XCTAssertEqual(loaded.kvBytesSavedPerToken(), 5 * 3 * 64 * 4)
        XCTAssertTrue(loaded.model.weightsHash!.hasPrefix("fnv1a64:"))
    }

    func testWeightsHashIsStableAndFast() throws {
        let model = try SharedModel.model()
        let start = Date()
        let a = try WeightsHash.compute(model.weights)
        let elapsed = Date().timeIntervalSince(start)
        print("weights hash \(a) in \(elapsed) s")
        XCTAssertEqual(a, try WeightsHash.compute(model.weights))
        XCTAssertEqual(a, try WeightsHash.of(model))
        XCTAssertLessThan(elapsed, 5)
    }

    func testEmptyPlanGivesBitIdenticalLogitsOnCPU() throws {
        try checkEmptyPlan(.cpu)
    }

    func testEmptyPlanGivesBitIdenticalLogitsOnVulkan() throws {
        try checkEmptyPlan(.vulkan)
    }

    private func checkEmptyPlan(_ backend: BackendKind) throws {
        let model = try SharedModel.model()
        let json = try SharingTestSupport.planJSON(model, spans: [])
        let path = SharingTestSupport.temporaryPath("empty.json")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try json.write(toFile: path, atomically: true, encoding: .utf8)
        let specs = try SharingPlan.load(path: path, model: model).layerSpecs(for: model.hyper)
        XCTAssertEqual(specs, LayerSpec.standard(layers: model.hyper.layers, kvHeads: model.hyper.kvHeads))
        let tokens = model.tokenizer.encode(SharingTestSupport.prompt)
        let device = backend == .vulkan ? try VulkanDevice() : nil
        let plain = try SharingTestSupport.runner(model, backend, specs: nil, device: device)
        let planned = try SharingTestSupport.runner(model, backend, specs: specs, device: device)
        let a = try plain.forward(tokens, logits: .all)
        let b = try planned.forward(tokens, logits: .all)
        XCTAssertEqual(a.count, b.count)
        XCTAssertTrue(a.map(\.bitPattern) == b.map(\.bitPattern), "empty plan changed logits on \(backend)")
        // Decode too.
        let next = try plain.forward([tokens[0]], logits: .last)
        let next2 = try planned.forward([tokens[0]], logits: .last)
        XCTAssertTrue(next.map(\.bitPattern) == next2.map(\.bitPattern))
    }

    // MARK: - Rejections

    private func assertRejected(_ json: String, mentions fragments: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let model = try SharedModel.model()
        guard let error = SharingTestSupport.loadError(json, model: model) else {
            return XCTFail("plan was accepted:\n\(json)", file: file, line: line)
        }
        for f in fragments {
            XCTAssertTrue(error.contains(f), "error does not mention \"\(f)\":\n\(error)", file: file, line: line)
        }
    }

    /// A valid plan with its SA spans (and derived layers) replaced; `layers` dropped so spans alone decide.
    private func planWithSpans(_ spans: [(Int, Int, Int)]) throws -> String {
        let model = try SharedModel.model()
        var object = try JSONSerialization.jsonObject(with: Data(SharingTestSupport.planJSON(model, spans: []).utf8)) as! [String: Any]
        object["method"] = "sharedAttention"
        object["layers"] = nil
        object["sharedAttention"] = ["spans": spans.map { ["first": $0.0, "last": $0.1, "source": $0.2] }]
        return String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
    }

    func testRejectsLayerOutOfRange() throws {
        try assertRejected(planWithSpans([(28, 31, 27)]), mentions: ["layer 30: span 0 (28-31) names layers 30-31, out of range 0..<30"])
    }

    func testRejectsSpanOverlappingLayerZero() throws {
        try assertRejected(planWithSpans([(0, 2, -1)]), mentions: ["layer 0:", "can never be shared", "layer -1:"])
    }

    func testRejectsSourceInsideAnotherSpan() throws {
        try assertRejected(planWithSpans([(10, 12, 9), (13, 14, 11)]), mentions: ["layer 11:", "itself shared", "span 0 (10-12)"])
    }

    func testRejectsOverlappingSpans() throws {
        try assertRejected(planWithSpans([(10, 12, 9), (12, 14, 9)]), mentions: ["layer 12:", "overlaps span 0"])
    }

    func testReportsEveryProblemAtOnce() throws {
        let error = try XCTUnwrap(SharingTestSupport.loadError(planWithSpans([(0, 1, -1), (28, 30, 27), (5, 6, 9)]), model: SharedModel.model()))
        XCTAssertTrue(error.contains("layer 0:"), error)
        XCTAssertTrue(error.contains("layer 30:"), error)
        XCTAssertTrue(error.contains("layer 9: source of span 2 (5-6) must come before the span"), error)
    }

    func testRejectsWrongModelHashAndShape() throws {
        let model = try SharedModel.model()
        let json = try SharingTestSupport.planJSON(model, spans: [20...21])
        let hash = try WeightsHash.of(model)
        try assertRejected(json.replacingOccurrences(of: hash, with: "fnv1a64:0123456789abcdef"),
                           mentions: ["weightsHash", "fnv1a64:0123456789abcdef", "different weights"])
        try assertRejected(json.replacingOccurrences(of: "\"kvHeads\" : 3", with: "\"kvHeads\" : 4"), mentions: ["kvHeads is 4 in the plan but 3"])
    }

    func testRejectsMalformedJSONSayingWhere() throws {
        let model = try SharedModel.model()
        let json = try SharingTestSupport.planJSON(model, spans: [20...21])
        try assertRejected(String(json.dropLast(5)), mentions: ["malformed JSON"])
        try assertRejected("{\"format\": \"layershare-sharing-plan\",\n  \"version\": 1,, }", mentions: ["malformed JSON", "line 2, column 16"])
        try assertRejected(json.replacingOccurrences(of: "\"first\" : 20", with: "\"first\" : \"twenty\""),
                           mentions: ["malformed JSON", "sharedAttention.spans[0].first"])
        try assertRejected("{}", mentions: ["malformed JSON", "'format' is missing"])
    }

    func testRejectsUnknownModeAndInconsistentLayers() throws {
        let model = try SharedModel.model()
        let json = try SharingTestSupport.planJSON(model, spans: [20...21])
        var object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any]
        var layers = object["layers"] as! [[String: Any]]
        layers[5]["mode"] = "crossLayer"
        layers[6]["mode"] = "lisa"  // a known mode without a lisa section
        layers[21]["mode"] = "standard"
        layers[21]["source"] = nil
        object["layers"] = layers
        let edited = String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
        try assertRejected(edited, mentions: ["layer 5: unknown mode \"crossLayer\"", "layer 6: mode is lisa but lisa.layers does not list it", "layer 21: mode is standard but a span shares it"])
    }

    func testSpanParsing() throws {
        XCTAssertEqual(try SpanProposal.parse("23-26,27-28"), [23...26, 27...28])
        XCTAssertEqual(try SpanProposal.parse("5"), [5...5])
        XCTAssertThrowsError(try SpanProposal.parse("5-3"))
        XCTAssertThrowsError(try SpanProposal.parse("a-b"))
    }
}
