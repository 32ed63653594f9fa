import Foundation
import LayerShare
import XCTest

/// Head-share plans on the real model: the paper's selection size, a plan that loads back and maps to
/// layer specs, and share maps that don't fit rejected naming the unit.
final class HeadSharePlanTests: XCTestCase {
    /// SmolLM2-135M at rate 0.3: int(0.3 · 30 layers · 3 KV groups) = 27 units.
    private func plan(_ model: LoadedModel, rate: Double = 0.3, chains: HeadShareChains = .original) throws -> SharingPlan {
        let matches = try HeadShareMatcher.match(weights: model.weights, strategy: .qk)
        let selection = try HeadShareSelection(matches: matches, rate: rate, chains: chains)
        return try SharingPlan.headShare(units: selection.units, strategy: .qk, rate: rate, chains: chains, model: model)
    }

    func testDefaultModelAtRate03SharesTwentySevenUnitsAndLoadsBack() throws {
        let model = try SharedModel.model()
        let plan = try plan(model)
        XCTAssertEqual(plan.method, "headShare")
        XCTAssertEqual(plan.sharedUnits.count, 27)
        let targets = Set(plan.sharedUnits.map(\.target))
        for u in plan.sharedUnits {
            XCTAssertLessThan(u.reads.layer, u.layer, "\(u.target) reads \(u.reads)")
            XCTAssertFalse(targets.contains(u.reads), "original chains: \(u.target) reads \(u.reads), which is shared itself")
        }
        let path = SharingTestSupport.temporaryPath("hs.json")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try plan.write(to: path)
        let loaded = try SharingPlan.load(path: path, model: model)
        XCTAssertEqual(loaded, plan)
        let specs = try loaded.layerSpecs(for: model.hyper)
        let reads = Dictionary(uniqueKeysWithValues: plan.sharedUnits.map { ($0.target, $0.reads) })
        for (l, spec) in specs.enumerated() {
            XCTAssertEqual(spec.scores, .own)
            for g in 0..<3 {
                let u = WeightUnit(layer: l, group: g)
                XCTAssertEqual(spec.heads.sources[g], reads[u] ?? u, "\(u)")
            }
        }
        // All attention tensors are Q4_1: per unit Q 192 rows × 360 bytes, K and V 64 × 360, O 576 rows × 6 blocks × 20.
        let saved = try loaded.headShareSavings(weights: model.weights)
        XCTAssertEqual(saved.total, 27 * (192 * 360 + 2 * 64 * 360 + 576 * 120))
        XCTAssertTrue(loaded.summary(weights: model.weights).contains("27 of 90 units"))
    }

    func testAuthorsChainsShareFewerUnitsEachReadingAnUnsharedOne() throws {
        let model = try SharedModel.model()
        let plan = try plan(model, chains: .authors)
        XCTAssertLessThanOrEqual(plan.sharedUnits.count, 27)
        let targets = Set(plan.sharedUnits.map(\.target))
        for u in plan.sharedUnits { XCTAssertFalse(targets.contains(u.reads), "\(u.target) reads \(u.reads), which is shared") }
        XCTAssertNoThrow(try plan.layerSpecs(for: model.hyper))
    }

    // MARK: - Rejections

    /// A valid rate-0.1 plan's JSON with `headShare.units` edited, and the units before the edit.
    private func edited(_ edit: (inout [[String: Any]]) -> Void) throws -> (json: String, units: [SharingPlan.SharedUnit]) {
        let model = try SharedModel.model()
        let valid = try plan(model, rate: 0.1)
        let path = SharingTestSupport.temporaryPath("hs.json")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try valid.write(to: path)
        var object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
        var section = object["headShare"] as! [String: Any]
        var units = section["units"] as! [[String: Any]]
        edit(&units)
        section["units"] = units
        object["headShare"] = section
        return (String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self), valid.sharedUnits)
    }

    private func assertRejected(_ json: String, mentions fragments: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        guard let error = SharingTestSupport.loadError(json, model: try SharedModel.model()) else {
            return XCTFail("plan was accepted:\n\(json)", file: file, line: line)
        }
        for f in fragments {
            XCTAssertTrue(error.contains(f), "error does not mention \"\(f)\":\n\(error)", file: file, line: line)
        }
    }

    func testRejectsReadingALaterLayer() throws {
        let (json, units) = try edited { $0[0]["reads"] = ["layer": 29, "group": 0] }
        try assertRejected(json, mentions: ["layer \(units[0].layer): group \(units[0].group) reads the weights of layer 29 group 0, which is not in an earlier layer"])
    }

    func testRejectsReadingItself() throws {
        let (json, units) = try edited { $0[0]["reads"] = ["layer": $0[0]["layer"]!, "group": $0[0]["group"]!] }
        try assertRejected(json, mentions: ["headShare.units[0] (\(units[0].target)) reads itself"])
    }

    func testRejectsUnitsOutOfRange() throws {
        let (reads, units) = try edited { $0[0]["reads"] = ["layer": 0, "group": 3] }
        try assertRejected(reads, mentions: ["layer \(units[0].layer): group \(units[0].group) reads the weights of layer 0 group 3, out of range (layers 0..<30, groups 0..<3)"])
        let (target, _) = try edited { $0[0]["layer"] = 30 }
        try assertRejected(target, mentions: ["headShare.units[0] (layer 30 group \(units[0].group)) is out of range"])
        let (negative, _) = try edited { $0[0]["reads"] = ["layer": -1, "group": 0] }
        try assertRejected(negative, mentions: ["reads the weights of layer -1 group 0, out of range"])
    }

    func testRejectsReadingASharedUnit() throws {
        // The last unit reads the first, which is shared itself: a chain the plan must resolve.
        let (json, units) = try edited { $0[$0.count - 1]["reads"] = ["layer": $0[0]["layer"]!, "group": $0[0]["group"]!] }
        let last = units[units.count - 1], first = units[0]
        try assertRejected(json, mentions: ["layer \(last.layer): group \(last.group) reads the weights of \(first.target), which itself reads \(first.reads)"])
    }
}
