import Foundation
import LayerShare
import XCTest

/// rmsnorm, softmax, RoPE and the element-wise kernels against float64 references.
final class VulkanKernelOpsTests: VulkanKernelTestCase {
    static let sizes = [1, 7, 33, 577, 1537]
    static let rowCounts = [1, 7, 33]
    static let u = 0x1p-24  // float32 unit roundoff

    // MARK: - rmsnorm

    /// Error metric: max |y − ref| / (|ref| + 1e-30), per element. The sum of dim squares (all
    /// positive) is off by ≤ dim·u relatively, inversesqrt by a few ulp, then two products:
    /// threshold (dim + 16)·u.
    func testRMSNorm() throws {
        print("rmsnorm: max relative error \(try checkRMSNorm())")
    }

    /// The shared-memory tree reductions (devices without subgroup arithmetic), with a workgroup
    /// of several subgroups, must give the same results.
    func testReductionsWithoutSubgroupOps() throws {
        var t = kernels.tuning
        t.reduceWorkgroup = 32
        kernels = try VulkanKernels(library: library, tuning: t, useSubgroupArithmetic: false)
        XCTAssertFalse(kernels.subgroupArithmetic)
        print("tree reductions: rmsnorm \(try checkRMSNorm()), softmax \(try checkSoftmax())")
    }

    func checkRMSNorm() throws -> Double {
        var worst = 0.0
        for rows in Self.rowCounts {
            for dim in Self.sizes {
                for inPlace in [false, true] {
                    let xOffset = inPlace ? 3 : 1, yOffset = inPlace ? 3 : 5
                    let eps: Float = dim == 1 ? 1e-2 : 1e-5
                    let x = random.floats(xOffset + rows * dim, -2, 2)
                    let w = random.floats(dim, 0.5, 1.5)
                    let xb = try buffer(x, label: "x")
                    let wb = try buffer(w, label: "norm")
                    let yb = inPlace ? xb : try poisoned(yOffset + rows * dim + 2)
                    try run { try kernels.rmsnorm($0, x: xb, xOffset: xOffset, weight: wb, y: yb, yOffset: yOffset, rows: rows, dim: dim, eps: eps) }
                    let y = try download(yb, count: yOffset + rows * dim)
                    var expected = [Double](repeating: 0, count: rows * dim)
                    for r in 0..<rows {
                        let row = (0..<dim).map { Double(x[xOffset + r * dim + $0]) }
                        let scale = 1 / (row.reduce(0) { $0 + $1 * $1 } / Double(dim) + Double(eps)).squareRoot()
                        for i in 0..<dim { expected[r * dim + i] = row[i] * scale * Double(w[i]) }
                    }
                    let got = Array(y[yOffset..<(yOffset + rows * dim)])
                    let e = worstRelative(got, expected) { abs(expected[$0]) + 1e-30 }
                    worst = max(worst, e.error)
                    XCTAssertLessThanOrEqual(e.error, Double(dim + 16) * Self.u,
                                             "rows \(rows) dim \(dim) inPlace \(inPlace): element \(e.index) = \(got[max(0, e.index)]) vs \(expected[max(0, e.index)])")
                    if !inPlace { XCTAssertEqual(y[yOffset - 1].bitPattern, Self.poison, "wrote before the output") }
                }
            }
        }
        return worst
    }

    // MARK: - softmax

    /// Error metric: max |y − ref| / ref per element (ref > 0). exp is a few ulp on good drivers
    /// (Vulkan allows 3 + 2|x| ulp), the sum of `cols` positive terms ≤ cols·u, one division:
    /// threshold (cols + 2·spread + 16)·u with spread the input range.
    func testSoftmax() throws {
        print("softmax: max relative error \(try checkSoftmax())")
    }

    func checkSoftmax() throws -> Double {
        var worst = 0.0
        for rows in Self.rowCounts {
            for cols in Self.sizes {
                // Large common offsets check the max subtraction: exp(1000) would overflow.
                let shift: Float = rows == 7 ? 1000 : (rows == 33 ? -1000 : 0)
                let offset = 2, stride = cols + 3
                var x = random.floats(offset + rows * stride, -10, 10)
                for i in x.indices { x[i] += shift }
                let xb = try buffer(x, label: "scores")
                try run { try kernels.softmax($0, x: xb, offset: offset, rows: rows, cols: cols, stride: stride) }
                let y = try download(xb, count: x.count)
                for r in 0..<rows {
                    let row = (0..<cols).map { Double(x[offset + r * stride + $0]) }
                    let m = row.max()!
                    let e = row.map { Foundation.exp($0 - m) }
                    let s = e.reduce(0, +)
                    let expected = e.map { $0 / s }
                    let got = Array(y[(offset + r * stride)..<(offset + r * stride + cols)])
                    let w = worstRelative(got, expected) { expected[$0] }
                    worst = max(worst, w.error)
                    XCTAssertLessThanOrEqual(w.error, Double(cols + 40 + 16) * Self.u, "rows \(rows) cols \(cols) row \(r)")
                    // The gap between rows is not part of any row and must be untouched.
                    if r + 1 < rows {
                        XCTAssertEqual(y[offset + r * stride + cols], x[offset + r * stride + cols])
                    }
                }
            }
        }
        return worst
    }

    // MARK: - RoPE

    /// Reference: angles pos · theta^(−2i/d), cos and sin all in float64, applied to the float inputs.
    /// Error metric: max over pairs of |y − ref| / (|a| + |b|) for the pair (a, b). The kernel's angle
    /// is accurate to ~2⁻²⁴ rad at any position (fixed-point turns, see rope.comp), so what remains
    /// is sin/cos and the rotation's rounding: threshold 4e-6. (A plain float32 angle pos·freq would
    /// already be off by up to ~5e-4 rad at position 8192; printed below for comparison.)
    func testRope() throws {
        var worst = 0.0
        var worstFarPosition = 0.0
        for layout in [ModelFormats.RopeLayout.adjacentPairs, .halfRotation] {
            for (rows, heads, headDim, start) in [(1, 1, 2, 0), (7, 3, 64, 5), (33, 2, 128, 8192 - 16), (1, 9, 64, 8191),
                                                  (5, 1, 32, 1_000_000), (3, 2, 6, 100)] {
                let theta: Float = headDim == 32 ? 500_000 : 10_000
                let xOffset = rows % 3
                let count = rows * heads * headDim
                let x = random.floats(xOffset + count + 1)
                let xb = try buffer(x, label: "qk")
                try run {
                    try kernels.rope($0, x: xb, xOffset: xOffset, rows: rows, heads: heads, headDim: headDim,
                                     startPosition: start, theta: theta, layout: layout)
                }
                let y = try download(xb, count: x.count)
                XCTAssertEqual(y[xOffset + count], x[xOffset + count], "wrote past the end")
                if xOffset > 0 { XCTAssertEqual(y[xOffset - 1], x[xOffset - 1], "wrote before the start") }
                let half = headDim / 2
                for r in 0..<rows {
                    let pos = Double(start + r)
                    for h in 0..<heads {
                        let base = xOffset + (r * heads + h) * headDim
                        for i in 0..<half {
                            let (ia, ib) = layout == .adjacentPairs ? (base + 2 * i, base + 2 * i + 1) : (base + i, base + i + half)
                            let angle = pos * pow(Double(theta), -2 * Double(i) / Double(headDim))
                            let a = Double(x[ia]), b = Double(x[ib])
                            let ra = a * cos(angle) - b * sin(angle), rb = a * sin(angle) + b * cos(angle)
                            let err = max(abs(Double(y[ia]) - ra), abs(Double(y[ib]) - rb)) / (abs(a) + abs(b) + 1e-30)
                            worst = max(worst, err)
                            if start >= 8000 { worstFarPosition = max(worstFarPosition, err) }
                            if !(err <= 4e-6) {
                                XCTFail("\(layout) d=\(headDim) pos \(Int(pos)) head \(h) pair \(i): (\(y[ia]), \(y[ib])) vs (\(ra), \(rb)), error \(err)")
                                return
                            }
                        }
                    }
                }
            }
        }
        // What the float32 angle would cost at pos 8191 (largest frequency error over i), for the report.
        var naive = 0.0
        for i in 0..<32 {
            let exact = 8191 * pow(10000.0, -2 * Double(i) / 64)
            let f = Float(8191) * Float(pow(10000.0, -2 * Double(i) / 64))
            naive = max(naive, abs(Double(f) - exact))
        }
        print("rope: max relative error \(worst) (positions ≥ 8000: \(worstFarPosition)); a float32 angle would be off by up to \(naive) rad at pos 8191")
    }

    /// RoPE into the KV cache (rope.comp KV_CACHE) on stacked [q | k | v] rows with a row stride: Q rotated
    /// in place, K rotated into the K cache and V copied into the V cache at startPosition + r. Same
    /// float64 reference and 4e-6 threshold as testRope; V must be copied bit for bit; cache rows outside
    /// the written range stay NaN-poisoned, and so does the gap at the end of each x row.
    func testRopeIntoCache() throws {
        var worst = 0.0
        for layout in [ModelFormats.RopeLayout.adjacentPairs, .halfRotation] {
            for (rows, heads, kvHeads, headDim, start) in [(1, 1, 1, 2, 0), (1, 9, 3, 64, 37), (7, 3, 1, 64, 5), (5, 4, 2, 6, 8190),
                                                           (33, 2, 2, 32, 0)] {
                let theta: Float = 10_000
                let rowSize = (heads + 2 * kvHeads) * headDim, kvRow = kvHeads * headDim
                let xOffset = 2, xStride = rowSize + 1
                let capacity = start + rows + 2
                let x = random.floats(xOffset + rows * xStride)
                let xb = try buffer(x, label: "qkv")
                let kb = try poisoned(capacity * kvRow), vb = try poisoned(capacity * kvRow)
                try run {
                    try kernels.ropeIntoCache($0, x: xb, xOffset: xOffset, xStride: xStride, rows: rows, heads: heads, kvHeads: kvHeads,
                                              headDim: headDim, startPosition: start, theta: theta, layout: layout,
                                              keyCache: kb, valueCache: vb)
                }
                let y = try download(xb, count: x.count)
                let kc = try download(kb, count: capacity * kvRow), vc = try download(vb, count: capacity * kvRow)
                let half = headDim / 2
                for p in 0..<capacity where p < start || p >= start + rows {
                    for j in 0..<kvRow where kc[p * kvRow + j].bitPattern != Self.poison || vc[p * kvRow + j].bitPattern != Self.poison {
                        XCTFail("\(layout): cache row \(p) outside \(start)..<\(start + rows) was written")
                        return
                    }
                }
                XCTAssertEqual(Array(y[0..<xOffset]), Array(x[0..<xOffset]), "wrote before x")
                for r in 0..<rows {
                    let pos = Double(start + r)
                    let src = xOffset + r * xStride
                    XCTAssertEqual(y[src + rowSize], x[src + rowSize], "wrote into the gap after row \(r)")
                    let vRow = (0..<kvRow).map { vc[(start + r) * kvRow + $0].bitPattern }
                    XCTAssertEqual(vRow, (0..<kvRow).map { x[src + (heads + kvHeads) * headDim + $0].bitPattern }, "V row \(r) not copied exactly")
                    for h in 0..<(heads + kvHeads) {
                        let isKey = h >= heads
                        let inBase = src + h * headDim
                        // Where the rotated head lands: in place for Q, the cache row for K.
                        let outBase = isKey ? (start + r) * kvRow + (h - heads) * headDim : inBase
                        let out = isKey ? kc : y
                        for i in 0..<half {
                            let (da, db) = layout == .adjacentPairs ? (2 * i, 2 * i + 1) : (i, i + half)
                            let angle = pos * pow(Double(theta), -2 * Double(i) / Double(headDim))
                            let a = Double(x[inBase + da]), b = Double(x[inBase + db])
                            let ra = a * cos(angle) - b * sin(angle), rb = a * sin(angle) + b * cos(angle)
                            let err = max(abs(Double(out[outBase + da]) - ra), abs(Double(out[outBase + db]) - rb)) / (abs(a) + abs(b) + 1e-30)
                            worst = max(worst, err)
                            if !(err <= 4e-6) {
                                XCTFail("\(layout) d=\(headDim) pos \(Int(pos)) head \(h) (key \(isKey)) pair \(i): error \(err)")
                                return
                            }
                        }
                    }
                }
            }
        }
        print("rope_kv: max relative error \(worst)")
    }

    // MARK: - element-wise

    /// Error metric: max |y − ref| / (|ref| + 1e-30). add/mul/scale round once: ≤ u (threshold u).
    /// SwiGLU: exp, a division and a product, exp allowed a few ulp for |g| ≤ 8: threshold 64·u.
    func testElementwise() throws {
        var worstSwiglu = 0.0
        for count in Self.sizes + [100_003] {
            let a = random.floats(count + 3, -8, 8)
            let b = random.floats(count + 5, -2, 2)
            let ab = try buffer(a, label: "a")
            let bb = try buffer(b, label: "b")
            // out-of-place, with offsets
            for (name, tol) in [("swiglu", 64 * Self.u), ("add", Self.u), ("mul", Self.u), ("scale", Self.u)] {
                let out = try poisoned(count + 4)
                try run { batch in
                    switch name {
                    case "swiglu": try kernels.swiglu(batch, gate: ab, gateOffset: 3, up: bb, upOffset: 5, out: out, outOffset: 1, count: count)
                    case "add": try kernels.add(batch, a: ab, aOffset: 3, b: bb, bOffset: 5, out: out, outOffset: 1, count: count)
                    case "mul": try kernels.mul(batch, a: ab, aOffset: 3, b: bb, bOffset: 5, out: out, outOffset: 1, count: count)
                    default: try kernels.scale(batch, x: ab, xOffset: 3, factor: 0.125, out: out, outOffset: 1, count: count)
                    }
                }
                let y = try download(out, count: count + 4)
                let expected: [Double] = (0..<count).map { i in
                    let g = Double(a[3 + i]), v = Double(b[5 + i])
                    switch name {
                    case "swiglu": return g / (1 + Foundation.exp(-g)) * v
                    case "add": return g + v
                    case "mul": return g * v
                    default: return g * 0.125
                    }
                }
                let e = worstRelative(Array(y[1..<(1 + count)]), expected) { abs(expected[$0]) + 1e-30 }
                if name == "swiglu" { worstSwiglu = max(worstSwiglu, e.error) }
                XCTAssertLessThanOrEqual(e.error, tol, "\(name) count \(count): element \(e.index)")
                XCTAssertEqual(y[0].bitPattern, Self.poison, "\(name) wrote before out")
                XCTAssertEqual(y[1 + count].bitPattern, Self.poison, "\(name) wrote past out")
            }
        }
        print("swiglu: max relative error \(worstSwiglu); add/mul/scale: within 1 rounding")
    }

    /// The residual update h = h + f, with out bound once (readWrite) as the same buffer as a.
    func testInPlaceAddAndSwiglu() throws {
        for count in [1, 33, 1537] {
            let h = random.floats(count + 2)
            let f = random.floats(count)
            let hb = try buffer(h, label: "h")
            let fb = try buffer(f, label: "f")
            try run { try kernels.add($0, a: hb, aOffset: 2, b: fb, out: hb, outOffset: 2, count: count) }
            let y = try download(hb, count: count + 2)
            XCTAssertEqual(Array(y[0..<2]), Array(h[0..<2]))
            for i in 0..<count { XCTAssertEqual(y[2 + i], h[2 + i] + f[i], "add element \(i)") }

            let gb = try buffer(h, label: "gate")
            try run { try kernels.swiglu($0, gate: gb, up: fb, out: gb, count: count) }
            let s = try download(gb, count: count)
            for i in 0..<count {
                let g = Double(h[i])
                let ref = g / (1 + Foundation.exp(-g)) * Double(f[i])
                XCTAssertLessThanOrEqual(abs(Double(s[i]) - ref), 64 * Self.u * abs(ref) + 1e-30, "swiglu element \(i)")
            }
        }
    }

    func testLongElementwiseFoldsGrid() throws {
        // One invocation per workgroup so a modest count exceeds maxComputeWorkGroupCount.x.
        let limit = device.info.maxWorkgroupCount.0
        guard limit < 1 << 20 else { throw XCTSkip("grid limit \(limit) too large to exceed cheaply") }
        var t = kernels.tuning
        t.elementwiseWorkgroup = 1
        kernels = try VulkanKernels(library: library, tuning: t)
        let count = limit + 1000
        let a = random.floats(count), b = random.floats(count)
        let ab = try buffer(a), bb = try buffer(b), out = try poisoned(count)
        try run { try kernels.add($0, a: ab, b: bb, out: out, count: count) }
        let y = try download(out, count: count)
        for i in 0..<count where y[i] != a[i] + b[i] {
            XCTFail("element \(i): \(y[i]) vs \(a[i] + b[i])")
            break
        }
    }

    // MARK: - measurement (prints only; speed is never asserted)

    func testReportMatvecBandwidth() throws {
        let t0 = Date()
        // LAYERSHARE_MATVEC_TUNING=workgroup,rows,parts tries another launch shape.
        if let text = ProcessInfo.processInfo.environment["LAYERSHARE_MATVEC_TUNING"] {
            let v = text.split(separator: ",").compactMap { Int($0) }
            if v.count == 3 {
                var t = kernels.tuning
                (t.matvecWorkgroup, t.matvecRows, t.matvecParts) = (v[0], v[1], v[2])
                kernels = try VulkanKernels(library: library, tuning: t)
            }
        }
        for result in try VulkanKernelBench.standardMatvecReport(kernels, iterations: 5) {
            print("matvec bandwidth: \(result)")
        }
        for source in VulkanKernelBench.StreamSource.allCases {
            print(String(format: "matvec bandwidth: plain streaming shader (%@) on this device: %.2f GB/s",
                         source.rawValue, try VulkanKernelBench.streamBandwidth(kernels, source: source)))
        }
        print("matvec bandwidth: prefill \(try VulkanKernelBench.matvec(kernels, type: .q4_1, inDim: 576, outDim: 1536, rows: 64, iterations: 3))")
        print("matvec bandwidth: tuning \(kernels.tuning), subgroup arithmetic \(kernels.subgroupArithmetic), \(String(format: "%.1f", Date().timeIntervalSince(t0))) s")
    }
}
