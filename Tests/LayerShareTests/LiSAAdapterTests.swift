import Foundation
@testable import LayerShare
import ModelFormats
import XCTest

/// Adapter files and LiSA plans: a round trip reproduces the parameters, and every kind of bad
/// adapter is refused with a message naming the problem.
final class LiSAAdapterTests: XCTestCase {
    private func writePlan(_ model: LoadedModel, _ layers: [LiSALayerParameters], directory: String) throws -> (plan: String, adapter: String) {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let adapter = directory + "/lisa.safetensors"
        let hash = try LiSAAdapter.write(layers, modelHash: nil, to: adapter)
        let plan = try SharingPlan.lisa(model: model, section: .init(adapter: "lisa.safetensors", adapterHash: hash, layers: layers.map(\.layer),
                                                                      variant: "full", rank: layers[0].rank, ffnWidth: layers[0].ffnWidth, ropeSelect: true))
        try plan.write(to: directory + "/lisa.json")
        return (directory + "/lisa.json", adapter)
    }

    func testRoundTripAndPlanSpecs() throws {
        let model = try SharedModel.model()
        let h = model.hyper
        var random = TestRandom("LiSAAdapterTests.roundTrip")
        let layers = [20, 21].map { LiSATestSupport.perturbedIdentity(layer: $0, hyper: h, rank: 10, ffnWidth: 9, random: &random) }
        let dir = SharingTestSupport.temporaryPath("lisa")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (planPath, _) = try writePlan(model, layers, directory: dir)
        let plan = try SharingPlan.load(path: planPath, model: model)
        XCTAssertEqual(plan.method, "lisa")
        let specs = try plan.layerSpecs(for: h)
        XCTAssertEqual(specs[20].scores, .lisa(layers[0]), "parameters read back bit for bit")
        XCTAssertEqual(specs[21].scores, .lisa(layers[1]))
        XCTAssertEqual(specs.filter { $0.scores == .own }.count, h.layers - 2)
        XCTAssertTrue(plan.summary().contains("LiSA"), plan.summary())
    }

    func testBadAdaptersAreRejectedByName() throws {
        let model = try SharedModel.model()
        let h = model.hyper
        var random = TestRandom("LiSAAdapterTests.bad")
        let good = LiSATestSupport.perturbedIdentity(layer: 20, hyper: h, rank: 10, ffnWidth: 9, random: &random)
        let dir = SharingTestSupport.temporaryPath("lisa-bad")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (planPath, adapterPath) = try writePlan(model, [good], directory: dir)

        // The plan points at another adapter: rewrite the adapter with different values.
        var other = good
        other.outBias[0] += 1
        try LiSAAdapter.write([other], modelHash: nil, to: adapterPath)
        XCTAssertThrowsError(try SharingPlan.load(path: planPath, model: model)) { XCTAssertTrue("\($0)".contains("different adapter"), "\($0)") }

        func readError(_ edit: (inout [SafetensorsWriter.Tensor]) -> Void) throws -> String {
            var w = SafetensorsWriter()
            w.metadata = ["format": LiSAAdapter.formatName, "layers": "20", "blk.20.lisa.rank": "10", "blk.20.lisa.ffn_width": "9"]
            w.tensors = LiSAAdapter.parts(of: good).map { .init(name: "blk.20.lisa.\($0.name)", shape: $0.shape, values: $0.values) }
            edit(&w.tensors)
            let data = try w.encoded()
            let path = dir + "/edited.safetensors"
            try data.write(to: URL(fileURLWithPath: path))
            let hash = data.withUnsafeBytes { LiSAAdapter.contentHash($0) }
            do {
                _ = try LiSAAdapter.read(path: path, expectedHash: hash, layers: [20], hyper: h)
                return "accepted"
            } catch { return "\(error)" }
        }
        XCTAssertEqual(try readError { _ in }, "accepted")
        let missing = try readError { $0.removeAll { $0.name == "blk.20.lisa.q_lowrank" } }
        XCTAssertTrue(missing.contains("blk.20.lisa.q_lowrank is missing"), missing)
        let shaped = try readError { t in
            let i = t.firstIndex { $0.name == "blk.20.lisa.head_mix" }!
            t[i] = .init(name: t[i].name, shape: [h.heads, h.heads - 1], values: Array(t[i].values.prefix(h.heads * (h.heads - 1))))
        }
        XCTAssertTrue(shaped.contains("head_mix") && shaped.contains("expected F32 [\(h.heads), \(h.heads)]"), shaped)
        let nan = try readError { t in
            let i = t.firstIndex { $0.name == "blk.20.lisa.ffn_out" }!
            var v = t[i].values
            v[5] = .nan
            t[i] = .init(name: t[i].name, shape: t[i].shape, values: v)
        }
        XCTAssertTrue(nan.contains("ffn_out has a non-finite value"), nan)
        let noAdapter = SharingTestSupport.loadError(try String(contentsOfFile: planPath, encoding: .utf8).replacingOccurrences(of: "\"lisa.safetensors\"", with: "\"/nonexistent/lisa.safetensors\""), model: model)
        XCTAssertTrue(noAdapter?.contains("does not exist") ?? false, noAdapter ?? "loaded")
    }

    func testPlanStructureProblems() throws {
        let model = try SharedModel.model()
        let json = try SharingTestSupport.planJSON(model, spans: [])
        // A LiSA section naming layer 0 and a layer an SA span shares.
        let base = try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any]
        var plan = base
        plan.removeValue(forKey: "layers")
        plan["method"] = "sharedAttention+lisa"
        plan["sharedAttention"] = ["spans": [["first": 10, "last": 11, "source": 9]]]
        plan["lisa"] = ["adapter": "x.safetensors", "adapterHash": "fnv1a64:0", "layers": [0, 11, 12], "variant": "full", "rank": 10,
                        "ffnWidth": 9, "ropeSelect": true] as [String: Any]
        let text = String(decoding: try JSONSerialization.data(withJSONObject: plan), as: UTF8.self)
        let error = SharingTestSupport.loadError(text, model: model) ?? "loaded"
        XCTAssertTrue(error.contains("layer 0"), error)
        XCTAssertTrue(error.contains("layer 11: is both LiSA and shared"), error)
        XCTAssertTrue(error.contains("layer 12: is LiSA but layer 11 borrows"), error)
    }
}
