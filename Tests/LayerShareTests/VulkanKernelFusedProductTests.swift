import Foundation
import LayerShare
import XCTest

/// The fused products of matmul_lanes.comp (input norm; residual add, SwiGLU and RoPE + KV-cache
/// outputs) against a float64 reference of the separate ops, for decode and prefill row counts,
/// texel and storage-buffer reads, NaN-poisoned outputs.
///
/// Error metric: every output is compared with its float64 value, the error divided by a scale
/// built from Σ_i |w_i·x̂_i| (x̂ = the normed input) of the products it depends on — the bound any
/// float32 summation order obeys, times K·2⁻²⁴ — plus the size of the value itself for the few
/// roundings after the product (norm scale, silu, sin/cos, the add). Threshold: 4·K·2⁻²⁴ on the
/// product part (2·K as in the matmul tests, doubled for the norm's own sum of K squares) and
/// 4e-6 relative on the value (RoPE's sin/cos, as in the rope tests). A wrong element, row pair,
/// position or cache row gives errors of order 1.
final class VulkanKernelFusedProductTests: VulkanKernelTestCase {
    enum Output: CustomStringConvertible {
        case store, accumulate, swiglu
        case rope(heads: Int, kvHeads: Int, headDim: Int, start: Int, layout: ModelFormats.RopeLayout)
        var description: String {
            switch self {
            case .store: return "store"
            case .accumulate: return "accumulate"
            case .swiglu: return "swiglu"
            case let .rope(h, kv, d, start, layout): return "rope \(h)+2·\(kv)×\(d) at \(start) \(layout)"
            }
        }
    }

    /// Products of one activation row in float64: value and Σ|w·x̂| per weight row.
    func reference(w: [Float], x: ArraySlice<Float>, norm: [Float]?, eps: Float, outRows: Int, cols: Int) -> (value: [Double], magnitude: [Double]) {
        var xn = x.map(Double.init)
        if let norm {
            let meanSquare = xn.reduce(0) { $0 + $1 * $1 } / Double(cols)
            let s = 1 / (meanSquare + Double(eps)).squareRoot()
            for i in 0..<cols { xn[i] *= s * Double(norm[i]) }
        }
        var value = [Double](repeating: 0, count: outRows), magnitude = value
        for o in 0..<outRows {
            for i in 0..<cols {
                let p = Double(w[o * cols + i]) * xn[i]
                value[o] += p
                magnitude[o] += abs(p)
            }
        }
        return (value, magnitude)
    }

    /// Runs one fused product and checks every output it owns; returns the worst normalised error.
    func check(type: GGMLType, cols: Int, output: Output, outRows requested: Int, rows: Int, withNorm: Bool, xOffset: Int) throws -> Double {
        let outRows: Int
        if case let .rope(h, kv, d, _, _) = output { outRows = (h + 2 * kv) * d } else { outRows = requested }
        let what = "\(type) \(output) O=\(outRows) K=\(cols) R=\(rows) norm=\(withNorm) xOffset=\(xOffset)"
        let bytes = random.matrixBytes(type, rows: outRows, cols: cols)
        let w = referenceRows(type, bytes, rows: outRows, cols: cols)
        let weight = try bytes.withUnsafeBytes { try VulkanMatrix(device: device, type: type, rows: outRows, cols: cols, bytes: $0, tileRows: kernels.tuning.weightTileRows, label: "W") }
        let x = random.floats(xOffset + rows * cols, -2, 2)
        let xb = try buffer(x, label: "x")
        let normWeights = withNorm ? random.floats(cols, 0.5, 1.5) : nil
        let eps: Float = 1e-5
        let nb = try normWeights.map { try buffer($0, label: "norm") }

        // y: output columns per row, a gap of one element after each row (yStride), poison elsewhere.
        let yCols: Int
        switch output {
        case .store, .accumulate: yCols = outRows
        case .swiglu: yCols = outRows / 2
        case let .rope(h, _, d, _, _): yCols = h * d
        }
        let yStride = yCols + 1, yOffset = 3
        let yCount = yOffset + rows * yStride
        var y0 = [Float](repeating: Float(bitPattern: Self.poison), count: yCount)
        if case .accumulate = output { for r in 0..<rows { for o in 0..<yCols { y0[yOffset + r * yStride + o] = random.floats(1)[0] } } }
        let yb = try buffer(y0, label: "y")

        var kernelOutput = VulkanKernels.ProductOutput.store(yb)
        var caches: (k: DeviceBuffer, v: DeviceBuffer, capacity: Int, kvRow: Int)?
        switch output {
        case .store: break
        case .accumulate: kernelOutput = .accumulate(yb)
        case .swiglu: kernelOutput = .swiglu(yb)
        case let .rope(h, kv, d, start, layout):
            let capacity = start + rows + 2, kvRow = kv * d
            let kc = try poisoned(capacity * kvRow, label: "K cache"), vc = try poisoned(capacity * kvRow, label: "V cache")
            caches = (kc, vc, capacity, kvRow)
            kernelOutput = .ropeIntoCache(queries: yb, .init(heads: h, kvHeads: kv, headDim: d, startPosition: start, theta: 10_000,
                                                             layout: layout, cache: .init(keys: kc, values: vc)))
        }
        var plain = false
        if case .store = output, !withNorm { plain = true }
        let input: VulkanKernels.ProductInput = nb.map { .rmsNorm(.weight($0), eps: eps) } ?? .plain
        guard plain || kernels.canFuse(weight: weight, rows: rows, output: kernelOutput) else {
            // Not a lanes case for this tuning: the kernels must refuse with an error, not fall back silently.
            XCTAssertThrowsError(try run { try self.kernels.product($0, weight: weight, x: xb, xOffset: xOffset, rows: rows, input: input,
                                                                   output: kernelOutput, yOffset: yOffset, yStride: yStride, label: "test") },
                                 "\(what): unfusable case accepted")
            return 0
        }
        try run { try self.kernels.product($0, weight: weight, x: xb, xOffset: xOffset, rows: rows, input: input,
                                           output: kernelOutput, yOffset: yOffset, yStride: yStride, label: "test") }
        let y = try download(yb, count: yCount)
        let kc = try caches.map { try download($0.k, count: $0.capacity * $0.kvRow) }
        let vc = try caches.map { try download($0.v, count: $0.capacity * $0.kvRow) }

        let productTolerance = 4 * Double(cols) * 0x1p-24, valueTolerance = 4e-6
        var worst = 0.0
        var firstFailure: String?
        func expect(_ got: Float, _ expected: Double, productScale: Double, valueScale: Double, _ where_: @autoclosure () -> String) {
            let scale = productTolerance * productScale + valueTolerance * valueScale + 1e-30
            let error = got.isNaN ? .infinity : abs(Double(got) - expected) / scale
            worst = max(worst, error)
            if !(error <= 1), firstFailure == nil { firstFailure = "\(where_()): got \(got), expected \(expected)" }
        }
        var ownedY = Set<Int>()
        for r in 0..<rows {
            let (p, m) = reference(w: w, x: x[(xOffset + r * cols)..<(xOffset + (r + 1) * cols)], norm: normWeights, eps: eps,
                                   outRows: outRows, cols: cols)
            let yRow = yOffset + r * yStride
            switch output {
            case .store:
                for o in 0..<outRows { ownedY.insert(yRow + o); expect(y[yRow + o], p[o], productScale: m[o], valueScale: 0, "y[\(r), \(o)]") }
            case .accumulate:
                for o in 0..<outRows {
                    ownedY.insert(yRow + o)
                    let e = Double(y0[yRow + o]) + p[o]
                    expect(y[yRow + o], e, productScale: m[o], valueScale: abs(e) / 8, "y[\(r), \(o)]")
                }
            case .swiglu:
                let f = outRows / 2
                for j in 0..<f {
                    ownedY.insert(yRow + j)
                    let g = p[j], u = p[f + j]
                    let sig = 1 / (1 + exp(-g))
                    let silu = g * sig, dsilu = sig * (1 + g * (1 - sig))
                    expect(y[yRow + j], silu * u, productScale: abs(dsilu * u) * m[j] + abs(silu) * m[f + j],
                           valueScale: abs(silu * u), "y[\(r), \(j)]")
                }
            case let .rope(h, kv, d, start, layout):
                let half = d / 2, kvRow = kv * d, pos = Double(start + r)
                for head in 0..<(h + 2 * kv) {
                    for i in 0..<half {
                        let (da, db) = layout == .adjacentPairs ? (2 * i, 2 * i + 1) : (i, i + half)
                        let (ra, rb) = (head * d + da, head * d + db)
                        if head >= h + kv {  // V: copied
                            let c = (start + r) * kvRow + (head - h - kv) * d
                            expect(vc![c + da], p[ra], productScale: m[ra], valueScale: 0, "V[\(r), \(head), \(da)]")
                            expect(vc![c + db], p[rb], productScale: m[rb], valueScale: 0, "V[\(r), \(head), \(db)]")
                            continue
                        }
                        let angle = pos * pow(10_000.0, -2 * Double(i) / Double(d))
                        let ea = p[ra] * cos(angle) - p[rb] * sin(angle), eb = p[ra] * sin(angle) + p[rb] * cos(angle)
                        let ps = m[ra] + m[rb], vs = abs(p[ra]) + abs(p[rb])
                        if head >= h {
                            let c = (start + r) * kvRow + (head - h) * d
                            expect(kc![c + da], ea, productScale: ps, valueScale: vs, "K[\(r), \(head - h), \(da)]")
                            expect(kc![c + db], eb, productScale: ps, valueScale: vs, "K[\(r), \(head - h), \(db)]")
                        } else {
                            ownedY.insert(yRow + head * d + da); ownedY.insert(yRow + head * d + db)
                            expect(y[yRow + head * d + da], ea, productScale: ps, valueScale: vs, "Q[\(r), \(head), \(da)]")
                            expect(y[yRow + head * d + db], eb, productScale: ps, valueScale: vs, "Q[\(r), \(head), \(db)]")
                        }
                    }
                }
            }
        }
        if let firstFailure { XCTFail("\(what): \(firstFailure) (normalised error \(worst))") }
        for i in 0..<yCount where !ownedY.contains(i) && y[i].bitPattern != y0[i].bitPattern {
            XCTFail("\(what): y[\(i)] outside the output was written")
            break
        }
        if let caches, case let .rope(_, _, _, start, _) = output {
            for p in 0..<caches.capacity where p < start || p >= start + rows {
                for j in 0..<caches.kvRow where kc![p * caches.kvRow + j].bitPattern != Self.poison || vc![p * caches.kvRow + j].bitPattern != Self.poison {
                    XCTFail("\(what): cache row \(p) outside \(start)..<\(start + rows) was written")
                    return worst
                }
            }
        }
        return worst
    }

    /// Every output with and without the norm across the three types, one decode row and a
    /// prefill of 3 rows (a partial activation-row group), x 4-aligned (texel view) or not
    /// (storage buffer). Each distinct define set is one more pipeline for the driver to compile,
    /// so the combinations are spread over the types rather than multiplied out.
    func allCases(types: [GGMLType] = [.q4_0, .q4_1, .q8_0, .q5_0, .q5_1], shapes: [(rows: Int, cols: Int)] = [(1, 576), (3, 96)]) throws -> Double {
        var worst = 0.0
        let outputs: [(Output, Int)] = [
            (.store, 97), (.accumulate, 97), (.swiglu, 90),
            (.rope(heads: 3, kvHeads: 1, headDim: 8, start: 5, layout: .adjacentPairs), 0),
            (.rope(heads: 3, kvHeads: 1, headDim: 8, start: 70_001, layout: .halfRotation), 0),
            (.rope(heads: 9, kvHeads: 3, headDim: 64, start: 37, layout: .adjacentPairs), 0),
        ]
        for (t, type) in types.enumerated() {
            for (i, (output, outRows)) in outputs.enumerated() {
                for (rows, cols) in shapes {
                    let withNorm = (i + t + rows) % 2 == 0
                    let xOffset = (i + t) % 3 == 0 ? 1 : 0
                    worst = max(worst, try check(type: type, cols: cols, output: output, outRows: outRows, rows: rows,
                                                 withNorm: withNorm, xOffset: xOffset))
                    worst = max(worst, try check(type: type, cols: cols, output: output, outRows: outRows, rows: rows,
                                                 withNorm: !withNorm, xOffset: 1 - xOffset))
                }
            }
        }
        return worst
    }

    /// Tuning for these tests: lanes for decode and prefill, 2 activation rows per workgroup
    /// (the model uses 8; fewer keeps the driver's compile time down and still leaves a partial group).
    func lanesTuning() -> KernelTuning {
        var t = kernels.tuning
        t.decodeLanesRows = 4
        t.prefillRegisterBlocked = true
        t.prefillLanes = true
        t.prefillWeightRows = 4
        t.prefillActivationRows = 2
        return t
    }

    func testFusedProducts() throws {
        kernels = try VulkanKernels(library: library, tuning: lanesTuning())
        print("fused products: worst normalised error \(try allCases())")
    }

    /// The K-quants through every fusion: rows of two super-blocks for decode, one for the prefill.
    func testFusedProductsKQuants() throws {
        kernels = try VulkanKernels(library: library, tuning: lanesTuning())
        let worst = try allCases(types: [.q4_K, .q5_K, .q6_K], shapes: [(1, 512), (3, 256)])
        print("fused products, K-quants: worst normalised error \(worst)")
    }

    /// The fusions do not touch how weights are read; one type with storage-buffer weights.
    func testFusedProductsStorageWeights() throws {
        var t = lanesTuning()
        t.matvecTexelWeights = false
        kernels = try VulkanKernels(library: library, tuning: t)
        print("fused products, storage-buffer weights: worst normalised error \(try allCases(types: [.q4_1]))")
    }

    /// Float weights read as 32-element blocks (Shaders/float_blocks.glsl) through every fusion:
    /// F16, BF16 and F32 through texel views, BF16 again as storage buffers.
    func testFusedProductsFloatWeights() throws {
        kernels = try VulkanKernels(library: library, tuning: lanesTuning())
        print("fused products, float weights: worst normalised error \(try allCases(types: [.f16, .bf16, .f32]))")
        var t = lanesTuning()
        t.matvecTexelWeights = false
        kernels = try VulkanKernels(library: library, tuning: t)
        print("fused products, float storage-buffer weights: worst normalised error \(try allCases(types: [.bf16]))")
    }

    /// Odd rows per invocation cannot hold row pairs: SwiGLU and RoPE outputs are refused (checked
    /// in `check`), the rest still work.
    func testOddRowsPerInvocation() throws {
        var t = lanesTuning()
        t.decodeLanesRows = 3
        t.prefillWeightRows = 5
        kernels = try VulkanKernels(library: library, tuning: t)
        print("fused products, odd rows per invocation: worst normalised error \(try allCases(types: [.q4_0]))")
    }

    /// A decode residual add that prepares the next norm (x·n' and partial sums of x²), then the
    /// product that reads them (NORM_PRE), against float64; the prepared values themselves are
    /// checked too: x·n' must be the float32 product of the new x and n', and the partial sums Σx².
    func testPreparedNorm() throws {
        kernels = try VulkanKernels(library: library, tuning: lanesTuning())
        for (type, hidden, inner, outRows, xOffset) in [(GGMLType.q4_1, 96, 64, 40, 0), (.q4_0, 576, 1536, 97, 1), (.q4_1, 5, 32, 0, 0),
                                                          (.f16, 96, 64, 40, 1), (.bf16, 160, 96, 7, 0)] {
            let what = "\(type) hidden \(hidden) inner \(inner) out \(outRows)"
            let b1 = random.matrixBytes(type, rows: hidden, cols: inner)
            let w1 = referenceRows(type, b1, rows: hidden, cols: inner)
            let m1 = try b1.withUnsafeBytes { try VulkanMatrix(device: device, type: type, rows: hidden, cols: inner, bytes: $0, tileRows: kernels.tuning.weightTileRows, label: "W1") }
            let a = random.floats(xOffset + inner)
            let residual = random.floats(hidden, -2, 2)
            let n = random.floats(hidden, 0.5, 1.5)
            let ab = try buffer(a, label: "a"), xb = try buffer(residual, label: "x"), nb = try buffer(n, label: "next norm")
            guard let count = kernels.nextNormPartials(weight: m1) else { return XCTFail("\(what): no next-norm support in lanes") }
            // Poison past the partial sums: the reader's whole-texel fetch must not let it in.
            let normed = try poisoned(hidden, label: "normed"), partials = try poisoned((count + 3) / 4 * 4 + 4, label: "partials")
            let eps: Float = 1e-5
            var out: DeviceBuffer?, m2: VulkanMatrix?, w2: [Float] = []
            if outRows > 0 {
                let b2 = random.matrixBytes(type, rows: outRows, cols: hidden)
                w2 = referenceRows(type, b2, rows: outRows, cols: hidden)
                m2 = try b2.withUnsafeBytes { try VulkanMatrix(device: device, type: type, rows: outRows, cols: hidden, bytes: $0, tileRows: kernels.tuning.weightTileRows, label: "W2") }
                out = try poisoned(outRows)
            }
            try run { batch in
                try self.kernels.product(batch, weight: m1, x: ab, xOffset: xOffset, rows: 1,
                                         output: .accumulate(xb, nextNorm: .init(weight: nb, normed: normed, partials: partials)), label: "add+prepare")
                if let m2, let out {
                    try self.kernels.product(batch, weight: m2, x: normed, rows: 1,
                                             input: .rmsNorm(.prepared(partials: partials, count: count), eps: eps), output: .store(out), label: "prepared norm")
                }
            }
            let x = try download(xb, count: hidden), xn = try download(normed, count: hidden), ps = try download(partials, count: count + 1)
            var squares = 0.0
            for i in 0..<hidden {
                var sum = Double(residual[i]), magnitude = abs(Double(residual[i]))
                for k in 0..<inner { let p = Double(w1[i * inner + k]) * Double(a[xOffset + k]); sum += p; magnitude += abs(p) }
                XCTAssertLessThanOrEqual(abs(Double(x[i]) - sum), 4 * Double(inner) * 0x1p-24 * magnitude + 0x1p-24 * abs(sum), "\(what): x[\(i)]")
                XCTAssertEqual(xn[i].bitPattern, (x[i] * n[i]).bitPattern, "\(what): normed[\(i)]")
                squares += Double(x[i]) * Double(x[i])
            }
            let partialSum = ps[0..<count].reduce(0.0) { $0 + Double($1) }
            XCTAssertEqual(partialSum, squares, accuracy: 1e-5 * squares, "\(what): partial sums")
            XCTAssertEqual(ps[count].bitPattern, Self.poison, "\(what): wrote past the partial sums")
            guard let out else { continue }
            let got = try download(out, count: outRows)
            let s = 1 / (squares / Double(hidden) + Double(eps)).squareRoot()
            for o in 0..<outRows {
                var sum = 0.0, magnitude = 0.0
                for i in 0..<hidden { let p = Double(w2[o * hidden + i]) * Double(xn[i]) * s; sum += p; magnitude += abs(p) }
                XCTAssertLessThanOrEqual(abs(Double(got[o]) - sum), 4 * Double(hidden) * 0x1p-24 * magnitude, "\(what): out[\(o)] = \(got[o]) vs \(sum)")
            }
        }
    }

    func testNoFusionWithoutLanes() throws {
        var t = lanesTuning()
        t.decodeLanesRows = 0
        t.prefillLanes = false
        kernels = try VulkanKernels(library: library, tuning: t)
        let bytes = random.matrixBytes(.q4_1, rows: 4, cols: 32)
        let weight = try bytes.withUnsafeBytes { try VulkanMatrix(device: device, type: .q4_1, rows: 4, cols: 32, bytes: $0, tileRows: kernels.tuning.weightTileRows, label: "W") }
        for rows in [1, 3] {
            XCTAssertFalse(kernels.canFuse(weight: weight, rows: rows, output: VulkanKernels.ProductOutput.accumulate(weight.buffer)))
        }
    }
}
