import Foundation
import LayerShare
import XCTest

/// Layer specs: what each layer emits follows from its readers, caches follow from score sources,
/// and invalid specs are rejected naming the layer.
final class LayerSpecTests: XCTestCase {
    /// A mixed plan: two SA spans from different sources, standard layers around them.
    func testMixedPlanDerivesEmissionsAndCacheBytes() throws {
        let kvHeads = 3, headDim = 64
        let sources: [LayerSpec.ScoreSource] = [.own, .own, .shared(from: 1), .shared(from: 1), .own, .shared(from: 4), .own]
        let specs = try LayerSpec.resolve(sources, kvHeads: kvHeads)
        XCTAssertEqual(specs.map(\.emits), [.nothing, .probabilities, .nothing, .nothing, .probabilities, .nothing, .nothing])
        XCTAssertEqual(specs.map(\.projections), [.queryKeyValue, .queryKeyValue, .value, .value, .queryKeyValue, .value, .queryKeyValue])
        let caches = specs.map { $0.cache(kvHeads: kvHeads, headDim: headDim) }
        for (l, cache) in caches.enumerated() {
            let own = sources[l] == .own
            XCTAssertEqual(cache.rowSize(.values), kvHeads * headDim, "layer \(l)")
            XCTAssertEqual(cache.rowSize(.keys), own ? kvHeads * headDim : nil, "layer \(l)")
            // K and V rows of 3 × 64 float32 for own layers (1536 bytes), V only for shared ones (768).
            XCTAssertEqual(cache.bytesPerToken, own ? 1536 : 768, "layer \(l)")
        }
        XCTAssertEqual(caches.map(\.bytesPerToken).reduce(0, +), 4 * 1536 + 3 * 768)
        XCTAssertEqual(caches[2].summary, "V[192]")
        XCTAssertEqual(caches[0].summary, "K[192] + V[192]")
    }

    func testInvalidSourcesAreRejectedNamingTheLayer() {
        func problems(_ sources: [LayerSpec.ScoreSource], heads: [HeadLayout]? = nil) -> String {
            do {
                _ = try LayerSpec.resolve(sources, heads: heads, kvHeads: 2)
                return ""
            } catch {
                return "\(error)"
            }
        }
        XCTAssertTrue(problems([.own, .shared(from: 2), .own]).contains("layer 1: shares the attention of layer 2, which does not come before it"))
        XCTAssertTrue(problems([.own, .shared(from: 1)]).contains("layer 1: shares the attention of layer 1"))
        XCTAssertTrue(problems([.own, .shared(from: 9)]).contains("layer 1: shares the attention of layer 9, which is out of range 0..<2"))
        XCTAssertTrue(problems([.own, .shared(from: 0), .shared(from: 1)]).contains("layer 2: shares the attention of layer 1, which borrows its own"))
        func unit(_ l: Int, _ g: Int) -> WeightUnit { WeightUnit(layer: l, group: g) }
        let own = (0..<3).map { HeadLayout.identity(layer: $0, kvHeads: 2) }
        XCTAssertTrue(problems([.own, .own, .own], heads: [own[0], HeadLayout(sources: [unit(1, 0), unit(0, 2)]), own[2]])
            .contains("layer 1: group 1 reads the weights of layer 0 group 2, out of range (layers 0..<3, groups 0..<2)"))
        XCTAssertTrue(problems([.own, .own, .own], heads: [own[0], HeadLayout(sources: [unit(1, 0), unit(2, 0)]), own[2]])
            .contains("layer 1: group 1 reads the weights of layer 2 group 0, which is not in an earlier layer"))
        XCTAssertTrue(problems([.own, .own, .own], heads: [own[0], HeadLayout(sources: [unit(1, 1), unit(1, 1)]), own[2]])
            .contains("layer 1: group 0 reads the weights of layer 1 group 1, which is not in an earlier layer"))
        // A chain: 2/0 → 1/0 → 0/1 must point at 0/1 directly.
        XCTAssertTrue(problems([.own, .own, .own], heads: [own[0], HeadLayout(sources: [unit(0, 1), unit(1, 1)]),
                                                         HeadLayout(sources: [unit(1, 0), unit(2, 1)])])
            .contains("layer 2: group 0 reads the weights of layer 1 group 0, which itself reads layer 0 group 1"))
        XCTAssertTrue(problems([.own], heads: [HeadLayout(sources: [unit(0, 0)])]).contains("layer 0: head layout has 1 entries for 2 KV groups"))
        XCTAssertEqual(problems([.own, .shared(from: 0)], heads: [own[0], HeadLayout(sources: [unit(0, 1), unit(1, 1)])]), "")
    }

    /// The runner's KV cache follows the specs (no K rows for shared layers), and the forward refuses
    /// specs it cannot run before loading any weight.
    func testTransformerCacheBytesAndRejectedSpecs() throws {
        let model = try SharedModel.model()
        let h = model.hyper
        let specs = try SharingPlan.sharedAttention(spans: [20...23, 27...28], model: model).layerSpecs(for: h)
        let runner = try SharingTestSupport.runner(model, .cpu, specs: specs, context: 16)
        XCTAssertEqual(runner.kvCacheBytes, 16 * (24 * 2 + 6) * h.kvSize * 4)

        let backend = CPUBackend()
        var sources = Array(repeating: LayerSpec.ScoreSource.own, count: h.layers)
        sources[5] = .shared(from: 4)
        // Layer 4 emits nothing although layer 5 reads it: specs spliced together, not built by resolve.
        let reading = try LayerSpec.resolve(sources, kvHeads: h.kvHeads)
        var unresolved = LayerSpec.standard(layers: h.layers, kvHeads: h.kvHeads)
        unresolved[5] = reading[5]
        XCTAssertThrowsError(try Transformer(backend: backend, weights: model.weights, capacity: 8, specs: unresolved)) { error in
            XCTAssertTrue("\(error)".contains("layer 4 emits nothing but its readers need probabilities"), "\(error)")
        }
        XCTAssertThrowsError(try Transformer(backend: backend, weights: model.weights, capacity: 8, specs: Array(specs.prefix(3)))) { error in
            XCTAssertTrue("\(error)".contains("plan has 3 layer specs, model has 30 layers"), "\(error)")
        }
    }
}
