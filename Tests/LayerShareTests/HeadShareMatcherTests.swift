import Foundation
@testable import LayerShare
import XCTest

/// Head-wise matching on a synthetic model whose answer is known: copies are found and selected
/// first, chains resolve by the chosen policy, the rate picks exactly Int(rate · units).
final class HeadShareMatcherTests: XCTestCase {
    func unit(_ l: Int, _ g: Int) -> WeightUnit { WeightUnit(layer: l, group: g) }

    /// 4 layers × 2 KV groups of 2 query heads; qk descriptors of 3 · 8 · 64 = 1536 floats, so two
    /// random uniform descriptors have cosine ≈ N(0, 1/√1536 ≈ 0.026).
    func model(_ random: inout TestRandom) -> SyntheticWeights {
        SyntheticWeights(layers: 4, kvHeads: 2, groupSize: 2, headDim: 8, hidden: 64, random: &random)
    }

    /// Random pairs must stay below this cosine (about 8 σ).
    let randomBound = 0.2

    func testCopiesAreFoundWithCosineOneAndSelectedFirst() throws {
        var random = TestRandom(#function)
        let weights = model(&random)
        weights.copy(unit(0, 0), to: unit(2, 1), scale: 2.5, projections: [.query, .key])  // V stays random: qk ignores it
        weights.copy(unit(1, 1), to: unit(3, 0))
        let matches = try HeadShareMatcher.match(weights: weights, strategy: .qk)
        XCTAssertEqual(matches.best.count, 6, "layers 1-3 × 2 groups are targets")
        XCTAssertEqual(matches.unitCount, 8)
        let copies: [WeightUnit: WeightUnit] = [unit(2, 1): unit(0, 0), unit(3, 0): unit(1, 1)]
        for m in matches.best {
            if let source = copies[m.target] {
                XCTAssertEqual(m.reference, source, "\(m.target)")
                XCTAssertEqual(m.similarity, 1, accuracy: 1e-6, "\(m.target)")
            } else {
                XCTAssertLessThan(abs(m.similarity), randomBound, "\(m)")
            }
            XCTAssertLessThan(m.reference.layer, m.target.layer, "only earlier layers are candidates: \(m)")
        }
        // Every cosine not involving a copy pair is near 0.
        for t in matches.best.map(\.target) {
            for l in 0..<t.layer {
                for g in 0..<2 where copies[t] != unit(l, g) {
                    XCTAssertLessThan(abs(matches.cosines(t, unit(l, g))), randomBound, "\(t) vs \(unit(l, g))")
                }
            }
        }
        XCTAssertEqual(Set(matches.ranked.prefix(2).map(\.target)), Set(copies.keys))
        let selection = try HeadShareSelection(matches: matches, rate: 0.25, chains: .original)  // Int(0.25 · 8) = 2
        XCTAssertEqual(selection.units.map(\.target), [unit(2, 1), unit(3, 0)])
        XCTAssertEqual(selection.units.map(\.reads), [unit(0, 0), unit(1, 1)])
        XCTAssertEqual(selection.threshold ?? 0, 1, accuracy: 1e-6)
    }

    /// Strategy v compares V rows only: a unit whose V rows alone are a copy is found by v, not by qk.
    func testStrategyChoosesTheRowsCompared() throws {
        var random = TestRandom(#function)
        let weights = model(&random)
        weights.copy(unit(0, 1), to: unit(2, 0), projections: [.value])
        let v = try HeadShareMatcher.match(weights: weights, strategy: .v)
        let qk = try HeadShareMatcher.match(weights: weights, strategy: .qk)
        let target = try XCTUnwrap(v.best.first { $0.target == unit(2, 0) })
        XCTAssertEqual(target.reference, unit(0, 1))
        XCTAssertEqual(target.similarity, 1, accuracy: 1e-6)
        XCTAssertLessThan(abs(try XCTUnwrap(qk.best.first { $0.target == unit(2, 0) }).similarity), randomBound)
        // qkv: V is a third of the descriptor (Q 2·8 rows, K 8, V 8), so the cosine is about 8/32 = 0.25 plus noise.
        let qkv = try HeadShareMatcher.match(weights: weights, strategy: .qkv)
        XCTAssertEqual(qkv.cosines(unit(2, 0), unit(0, 1)), 0.25, accuracy: 0.1)
    }

    /// A 3-chain R ← A ← B ← C (each a noisy copy of the one before) with all three selected.
    func testChainPolicies() throws {
        var random = TestRandom(#function)
        let weights = model(&random)
        let r = unit(0, 1), a = unit(1, 0), b = unit(2, 1), c = unit(3, 0)
        weights.perturbedCopy(r, to: a, amplitude: 0.3, random: &random)
        weights.perturbedCopy(a, to: b, amplitude: 0.3, random: &random)
        weights.perturbedCopy(b, to: c, amplitude: 0.3, random: &random)
        let matches = try HeadShareMatcher.match(weights: weights)
        let best = Dictionary(uniqueKeysWithValues: matches.best.map { ($0.target, $0.reference) })
        XCTAssertEqual([best[a], best[b], best[c]], [r, a, b], "the chain was not built as intended")

        // Int(0.375 · 8) = 3: the chain's cosines (≈ 0.96) beat every random pair (< 0.2).
        let original = try HeadShareSelection(matches: matches, rate: 0.375, chains: .original)
        XCTAssertEqual(Set(original.selected.map(\.target)), [a, b, c])
        XCTAssertEqual(original.units.map(\.target), [a, b, c])
        XCTAssertEqual(original.units.map(\.reads), [r, r, r], "original: every target reads the chain's root")
        XCTAssertEqual(original.units[1].similarity!, matches.cosines(b, r), accuracy: 0)
        XCTAssertEqual(original.keptOwn, [])

        let authors = try HeadShareSelection(matches: matches, rate: 0.375, chains: .authors)
        XCTAssertEqual(authors.units.map(\.target), [c], "authors: A and B are references of later targets, so they keep their own weights")
        XCTAssertEqual(authors.units.map(\.reads), [b])
        XCTAssertEqual(authors.keptOwn, [a, b])

        // Both resolve to plans that validate and map to head layouts.
        for selection in [original, authors] {
            let plan = try SharingPlan.headShare(units: selection.units, strategy: .qk, rate: 0.375, chains: selection.chains,
                                                 identity: weights.identity)
            let specs = try plan.layerSpecs(for: weights.hyper)
            for u in selection.units { XCTAssertEqual(specs[u.layer].heads.sources[u.group], u.reads) }
        }
    }

    /// A reference shared by two targets, one of which is itself read: authors keeps only that one.
    func testAuthorsLoopOnAFan() {
        func match(_ t: WeightUnit, _ r: WeightUnit) -> HeadMatch { HeadMatch(target: t, reference: r, similarity: 0.5) }
        let map = HeadShareChains.authorsLoop([match(unit(2, 0), unit(1, 0)), match(unit(1, 0), unit(0, 0)), match(unit(2, 1), unit(0, 0))])
        XCTAssertEqual(map[unit(1, 0)], unit(1, 0))
        XCTAssertEqual(map[unit(2, 0)], unit(1, 0))
        XCTAssertEqual(map[unit(2, 1)], unit(0, 0))
        XCTAssertEqual(map[unit(0, 0)], unit(0, 0))
        let roots = HeadShareChains.roots([match(unit(2, 0), unit(1, 0)), match(unit(1, 0), unit(0, 0)), match(unit(3, 1), unit(2, 0))])
        XCTAssertEqual(roots, [unit(1, 0): unit(0, 0), unit(2, 0): unit(0, 0), unit(3, 1): unit(0, 0)])
    }

    func testRateSelectsExactlyIntRateTimesUnits() throws {
        var random = TestRandom(#function)
        let matches = try HeadShareMatcher.match(weights: model(&random))
        for k in 0...8 {
            let selection = try HeadShareSelection(matches: matches, rate: Double(k) / 8, chains: .original)
            XCTAssertEqual(selection.requested, k)
            XCTAssertEqual(selection.selected.count, min(k, 6), "clamped to the 6 targets")
            XCTAssertEqual(selection.units.count, min(k, 6))
            XCTAssertEqual(selection.selected.map(\.target), Array(matches.ranked.prefix(k).map(\.target)))
        }
        let none = try HeadShareSelection(matches: matches, rate: 0, chains: .original)
        XCTAssertTrue(none.units.isEmpty)
        XCTAssertNil(none.threshold)
        XCTAssertEqual(try SharingPlan.headShare(units: [], strategy: .qk, rate: 0, chains: .original, identity: model(&random).identity).method,
                       "standard")
        XCTAssertEqual(try HeadShareMatches.count(rate: 0.3, units: 90), 27)
        XCTAssertEqual(try HeadShareMatches.count(rate: 0.1, units: 90), 9)
        for bad in [-0.1, 1.5, .nan, .infinity] {
            XCTAssertThrowsError(try HeadShareMatches.count(rate: bad, units: 90)) { XCTAssertTrue("\($0)".contains("between 0 and 1"), "\($0)") }
        }
    }

    /// f32 weights: a unit's Q slice is 2·8 rows × 64 × 4 bytes, K and V 8 rows, O 64 rows × 16 columns.
    func testWeightBytesSavedCountsEverySliceAndSkipsQKInsideSpans() throws {
        var random = TestRandom(#function)
        let weights = model(&random)
        let units = [SharingPlan.SharedUnit(layer: 2, group: 1, reads: unit(0, 0)), .init(layer: 3, group: 0, reads: unit(1, 1))]
        let plan = try SharingPlan.headShare(units: units, strategy: .qk, rate: 0.25, chains: .original, identity: weights.identity)
        let saved = try plan.headShareSavings(weights: weights)
        XCTAssertEqual(saved.saved, [.query: 2 * 4096, .key: 2 * 2048, .value: 2 * 2048, .output: 2 * 4096])
        XCTAssertEqual(saved.attentionBytes, 4 * (2 * 8192 + 2 * 4096))
        XCTAssertEqual(saved.total * 4, saved.attentionBytes, "2 of 8 units")
        // Layer 3's target reads layer 1, inside an SA span, which loads no Q/K itself: the Q/K slice
        // read moves there, so only layer 2's target saves Q/K.
        let readsSA = try SharingPlan.headShare(units: units, strategy: .qk, rate: 0.25, chains: .original, spans: [1...1],
                                                identity: weights.identity)
        XCTAssertEqual(try readsSA.headShareSavings(weights: weights).saved, [.query: 4096, .key: 2048, .value: 2 * 2048, .output: 2 * 4096])
        // Layer 2's target inside the span loads no Q/K either: V and O only.
        let combined = try SharingPlan.headShare(units: units, strategy: .qk, rate: 0.25, chains: .original, spans: [1...2],
                                                 identity: weights.identity)
        XCTAssertEqual(combined.method, "sharedAttention+headShare")
        XCTAssertEqual(try combined.headShareSavings(weights: weights).saved, [.query: 0, .key: 0, .value: 2 * 2048, .output: 2 * 4096])
        let summary = combined.summary(weights: weights)
        XCTAssertTrue(summary.contains("layers 1-2 reuse the attention probabilities of layer 0"), summary)
        XCTAssertTrue(summary.contains("2 of 8 units (KV groups) read an earlier unit's weights"), summary)
        XCTAssertTrue(summary.contains("units shared per layer (layer:count): 2:1 3:1"), summary)
        XCTAssertTrue(summary.contains("weight bytes saved: 12288 bytes"), summary)
    }
}
