import Foundation
import XCTest
@testable import LayerShare

/// Each kernel against a plain float64 loop on fresh random inputs (seed printed per test).
///
/// Tolerance rule of thumb used below: float32 has unit roundoff u = 2⁻²⁴ ≈ 6e-8. A float32 sum
/// of K terms is off by at most ≈ K·u·Σ|terms| (worst case) and ≈ sqrt(K)·u·Σ|terms| typically,
/// in any summation order (BLAS blocking only reorders). We allow 1e-5·sqrt(K)·Σ|terms|, i.e.
/// ~170·sqrt(K) roundoffs: above the worst case for every K used here (577·u = 3.4e-5 <
/// 1e-5·sqrt(577) = 2.4e-4), yet orders of magnitude below what an indexing bug produces (an
/// error the size of a whole term).
final class CPUKernelsTests: XCTestCase {
    static let oddSizes = [1, 7, 33, 577]

    // MARK: matmul

    func testMatmulMatchesFloat64() {
        var random = TestRandom(#function)
        let shapes = [(1, 1, 1), (1, 577, 33), (1, 33, 577), (7, 7, 7), (7, 577, 33),
                      (33, 33, 577), (33, 577, 7), (577, 1, 7), (7, 577, 577)]
        for (n, inDim, outDim) in shapes {
            let x = random.floats(n * inDim), w = random.floats(outDim * inDim)
            var y = [Float](repeating: .nan, count: n * outDim)
            CPUKernels.matmul(x, rows: n, inDim: inDim, weight: w, outDim: outDim, into: &y)
            var expected = [Double](repeating: 0, count: n * outDim)
            var magnitude = [Double](repeating: 0, count: n * outDim)  // Σ|x·w| per output
            for r in 0..<n {
                for o in 0..<outDim {
                    for i in 0..<inDim {
                        let term = Double(x[r * inDim + i]) * Double(w[o * inDim + i])
                        expected[r * outDim + o] += term
                        magnitude[r * outDim + o] += abs(term)
                    }
                }
            }
            // Dot products of length inDim: the rule in the class comment.
            assertClose(y, expected, tolerance: { 1e-5 * Double(inDim).squareRoot() * magnitude[$0] },
                        "matmul n=\(n) in=\(inDim) out=\(outDim)")
        }
    }

    // MARK: rmsnorm

    func testRmsnormMatchesFloat64() {
        var random = TestRandom(#function)
        let eps: Float = 1e-5
        for dim in Self.oddSizes {
            for rows in [1, 3] {
                var x = random.floats(rows * dim, -2, 2)
                if rows == 3 { for i in 0..<dim { x[dim + i] *= 1e-3 } }  // a small row, where eps matters more
                let weight = random.floats(dim, -1.5, 1.5)
                var y = [Float](repeating: .nan, count: rows * dim)
                CPUKernels.rmsnorm(x, weight: weight, into: &y, rows: rows, dim: dim, eps: eps)
                var expected = [Double](repeating: 0, count: rows * dim)
                for r in 0..<rows {
                    let sumSquares = (0..<dim).reduce(0.0) { $0 + Double(x[r * dim + $1]) * Double(x[r * dim + $1]) }
                    let scale = 1 / (sumSquares / Double(dim) + Double(eps)).squareRoot()
                    for i in 0..<dim { expected[r * dim + i] = Double(x[r * dim + i]) * scale * Double(weight[i]) }
                }
                // The sum of squares has only positive terms, so its *relative* error is ≤ dim·u;
                // the square root halves it and a handful of roundings follow. Relative 1e-5·sqrt(dim)
                // covers that (class comment); tiny absolute slack for exact zeros.
                assertClose(y, expected, tolerance: { 1e-5 * Double(dim).squareRoot() * abs(expected[$0]) + 1e-30 },
                            "rmsnorm rows=\(rows) dim=\(dim)")
            }
        }
    }

    func testRmsnormInPlace() {
        var random = TestRandom(#function)
        let x = random.floats(2 * 33), weight = random.floats(33)
        var separate = [Float](repeating: 0, count: x.count)
        CPUKernels.rmsnorm(x, weight: weight, into: &separate, rows: 2, dim: 33, eps: 1e-6)
        var inPlace = x
        inPlace.withUnsafeMutableBufferPointer { p in
            CPUKernels.rmsnorm(p.baseAddress!, weight: weight, into: p.baseAddress!, rows: 2, dim: 33, eps: 1e-6)
        }
        XCTAssertEqual(inPlace, separate)
    }

    // MARK: rope

    func testRopeMatchesFloat64() {
        var random = TestRandom(#function)
        let heads = 3
        for layout in [RopeLayout.adjacentPairs, .halfRotation] {
            for headDim in [2, 8, 64] {
                for (rows, start) in [(1, 0), (7, 0), (1, 1000), (7, 4093)] {
                    for theta: Float in [10000, 100000] {
                        let input = random.floats(rows * heads * headDim)
                        var x = input
                        CPUKernels.rope(&x, rows: rows, heads: heads, headDim: headDim,
                                        startPosition: start, theta: theta, layout: layout)
                        var expected = [Double](repeating: 0, count: x.count)
                        var pairMagnitude = [Double](repeating: 0, count: x.count)
                        let half = headDim / 2
                        for r in 0..<rows {
                            for h in 0..<heads {
                                let base = (r * heads + h) * headDim
                                for i in 0..<half {
                                    let j0 = layout == .adjacentPairs ? base + 2 * i : base + i
                                    let j1 = layout == .adjacentPairs ? base + 2 * i + 1 : base + i + half
                                    let angle = Double(start + r) * pow(Double(theta), -2.0 * Double(i) / Double(headDim))
                                    let a = Double(input[j0]), b = Double(input[j1])
                                    expected[j0] = a * cos(angle) - b * sin(angle)
                                    expected[j1] = a * sin(angle) + b * cos(angle)
                                    pairMagnitude[j0] = abs(a) + abs(b)
                                    pairMagnitude[j1] = abs(a) + abs(b)
                                }
                            }
                        }
                        // Each output is a·c ± b·s with c, s rounded once to float32 and three
                        // float32 roundings: ≤ ~5u·(|a|+|b|). 1e-6 ≈ 17u leaves room.
                        assertClose(x, expected, tolerance: { 1e-6 * pairMagnitude[$0] },
                                    "rope \(layout) d=\(headDim) rows=\(rows) start=\(start) theta=\(theta)")
                    }
                }
            }
        }
    }

    /// llama.cpp's converter permutes Q/K rows so that adjacent pairs in the GGUF layout hold what
    /// Hugging Face keeps at (i, i + d/2): rotating either form must give the same numbers.
    func testRopeLayoutsAgreeUnderThePermutation() {
        var random = TestRandom(#function)
        let headDim = 64, heads = 2, rows = 5, half = headDim / 2
        var hf = random.floats(rows * heads * headDim)
        var gguf = [Float](repeating: 0, count: hf.count)
        for v in 0..<(rows * heads) {
            for i in 0..<half {
                gguf[v * headDim + 2 * i] = hf[v * headDim + i]
                gguf[v * headDim + 2 * i + 1] = hf[v * headDim + i + half]
            }
        }
        CPUKernels.rope(&hf, rows: rows, heads: heads, headDim: headDim, startPosition: 17, theta: 10000, layout: .halfRotation)
        CPUKernels.rope(&gguf, rows: rows, heads: heads, headDim: headDim, startPosition: 17, theta: 10000, layout: .adjacentPairs)
        for v in 0..<(rows * heads) {
            for i in 0..<half {
                XCTAssertEqual(gguf[v * headDim + 2 * i], hf[v * headDim + i])
                XCTAssertEqual(gguf[v * headDim + 2 * i + 1], hf[v * headDim + i + half])
            }
        }
    }

    func testRopeAtPositionZeroIsIdentity() {
        var random = TestRandom(#function)
        let input = random.floats(3 * 64)
        var x = input
        CPUKernels.rope(&x, rows: 1, heads: 3, headDim: 64, startPosition: 0, theta: 10000, layout: .adjacentPairs)
        XCTAssertEqual(x, input)  // cos 0 = 1 and sin 0 = 0 exactly
    }

    // MARK: softmax

    func testSoftmaxMatchesFloat64() {
        var random = TestRandom(#function)
        for cols in Self.oddSizes {
            let rows = 3
            var x = random.floats(rows * cols, -20, 20)
            for i in 0..<cols { x[2 * cols + i] += 1000 }  // would overflow exp without the max shift
            let input = x
            CPUKernels.softmax(&x, rows: rows, cols: cols)
            var expected = [Double](repeating: 0, count: x.count)
            for r in 0..<rows {
                let row = input[(r * cols)..<((r + 1) * cols)].map(Double.init)
                let m = row.max()!
                let e = row.map { exp($0 - m) }
                let sum = e.reduce(0, +)
                for i in 0..<cols { expected[r * cols + i] = e[i] / sum }
            }
            // Relative error per entry: the float32 difference x − max (≤ u·40 absolute on the
            // exponent, so ≤ 40u relative after exp), expf (≤ 1 ulp) and a positive-term sum of
            // cols terms (≤ cols·u relative): ≤ (45 + cols)·u < 1e-5·sqrt(cols) for these sizes.
            assertClose(x, expected, tolerance: { 1e-5 * Double(cols).squareRoot() * expected[$0] + 1e-30 },
                        "softmax cols=\(cols)")
        }
    }

    // MARK: swiglu / add

    func testSwigluMatchesFloat64() {
        var random = TestRandom(#function)
        for count in Self.oddSizes {
            var gate = random.floats(count, -10, 10)
            gate[0] = count > 1 ? -100 : 100  // exp overflow and the saturated end
            let up = random.floats(count, -2, 2)
            var out = [Float](repeating: .nan, count: count)
            CPUKernels.swiglu(gate: gate, up: up, into: &out, count: count)
            let expected = (0..<count).map { i -> Double in
                let g = Double(gate[i])
                return g / (1 + exp(-g)) * Double(up[i])
            }
            // Element-wise: expf ≤ 1 ulp plus four float32 roundings ⇒ ≤ ~6u relative; allow
            // 1e-6 (≈17u). Absolute 1e-30 covers silu(−100) ≈ −4e-42, which float32 gives as −0.
            assertClose(out, expected, tolerance: { 1e-6 * abs(expected[$0]) + 1e-30 }, "swiglu count=\(count)")
        }
    }

    func testAddIsExactlyRounded() {
        var random = TestRandom(#function)
        for count in Self.oddSizes {
            let a = random.floats(count), b = random.floats(count)
            var out = [Float](repeating: .nan, count: count)
            CPUKernels.add(a, b, into: &out, count: count)
            // A float32 add is the exact sum rounded once; the Double sum of two floats in [-1, 1]
            // is exact, so rounding it to Float must agree bit for bit.
            XCTAssertEqual(out, (0..<count).map { Float(Double(a[$0]) + Double(b[$0])) }, "add count=\(count)")
        }
    }

    // MARK: attention

    /// (heads, kvHeads, headDim, n, keyCount, queryStart)
    static let attentionCases = [
        (3, 3, 7, 1, 33, 32),      // decode, GQA ratio 1
        (6, 2, 16, 1, 1, 0),       // first token, ratio 3
        (9, 3, 64, 1, 577, 576),   // decode at a long context, ratio 3 (SmolLM2's head layout)
        (6, 2, 64, 7, 20, 5),      // prefill after a cached prefix, ratio 3; keys 12..<20 invisible
        (3, 3, 33, 7, 12, 5),      // prefill after a prefix, ratio 1
        (3, 1, 8, 33, 33, 0),      // whole prompt, ratio 3
    ]

    func testAttentionMatchesFloat64() {
        var random = TestRandom(#function)
        for (heads, kvHeads, d, n, keyCount, queryStart) in Self.attentionCases {
            let what = "attention heads=\(heads) kv=\(kvHeads) d=\(d) n=\(n) T=\(keyCount) start=\(queryStart)"
            let q = random.floats(n * heads * d), k = random.floats(keyCount * kvHeads * d)
            let v = random.floats(keyCount * kvHeads * d)
            var out = [Float](repeating: .nan, count: n * heads * d)
            var probabilities = [Float](repeating: .nan, count: heads * n * keyCount)
            CPUKernels.attention(q: q, k: k, v: v, out: &out, queryCount: n, keyCount: keyCount, heads: heads,
                                 kvHeads: kvHeads, headDim: d, queryStart: queryStart, probabilitiesOut: &probabilities)

            var expectedOut = [Double](repeating: 0, count: out.count)
            var expectedP = [Double](repeating: 0, count: probabilities.count)
            let group = heads / kvHeads
            for h in 0..<heads {
                let g = h / group
                for i in 0..<n {
                    let visible = queryStart + i + 1
                    var scores = (0..<visible).map { j in
                        (0..<d).reduce(0.0) { $0 + Double(q[(i * heads + h) * d + $1]) * Double(k[(j * kvHeads + g) * d + $1]) }
                            / Double(d).squareRoot()
                    }
                    let m = scores.max()!
                    scores = scores.map { exp($0 - m) }
                    let sum = scores.reduce(0, +)
                    for j in 0..<visible {
                        let p = scores[j] / sum
                        expectedP[(h * n + i) * keyCount + j] = p
                        for e in 0..<d { expectedOut[(i * heads + h) * d + e] += p * Double(v[(j * kvHeads + g) * d + e]) }
                    }
                }
            }
            // Inputs are in [-1, 1], so |score| ≤ sqrt(d) and its float32 error is ≲ 1e-5·d by the
            // class rule (Σ|q·k|/sqrt(d) ≤ sqrt(d), times sqrt(d)). That perturbs each probability
            // by the same relative amount; the output, a convex combination of |v| ≤ 1 summed over
            // up to T keys, adds ≲ 1e-5·sqrt(T). Hence 1e-5·(d + sqrt(T)) for p and out alike.
            let tolerance = 1e-5 * (Double(d) + Double(keyCount).squareRoot())
            assertClose(out, expectedOut, tolerance: { _ in tolerance }, what + " out")
            assertClose(probabilities, expectedP, tolerance: { _ in tolerance }, what + " probabilities")
            for h in 0..<heads {
                for i in 0..<n {
                    for j in (queryStart + i + 1)..<keyCount {
                        XCTAssertEqual(probabilities[(h * n + i) * keyCount + j], 0, "\(what): masked entry not 0")
                    }
                }
            }

            // Without the probability buffer the result must not change.
            var outWithoutP = [Float](repeating: .nan, count: out.count)
            CPUKernels.attention(q: q, k: k, v: v, out: &outWithoutP, queryCount: n, keyCount: keyCount, heads: heads,
                                 kvHeads: kvHeads, headDim: d, queryStart: queryStart)
            XCTAssertEqual(outWithoutP, out, what + " without probabilitiesOut")
        }
    }

    func testApplyProbabilitiesMatchesFloat64() {
        var random = TestRandom(#function)
        for (heads, kvHeads, d, n, keyCount) in [(6, 2, 7, 5, 33), (3, 3, 64, 1, 577), (3, 1, 1, 7, 1)] {
            var p = random.floats(heads * n * keyCount, 0, 1)
            for row in 0..<(heads * n) {  // rows of a probability matrix sum to 1
                let s = p[(row * keyCount)..<((row + 1) * keyCount)].reduce(0, +)
                for j in 0..<keyCount { p[row * keyCount + j] /= s }
            }
            let v = random.floats(keyCount * kvHeads * d)
            var out = [Float](repeating: .nan, count: n * heads * d)
            CPUKernels.applyProbabilities(p, v: v, out: &out, queryCount: n, keyCount: keyCount,
                                          heads: heads, kvHeads: kvHeads, headDim: d)
            var expected = [Double](repeating: 0, count: out.count)
            for h in 0..<heads {
                for i in 0..<n {
                    for j in 0..<keyCount {
                        let pij = Double(p[(h * n + i) * keyCount + j])
                        for e in 0..<d { expected[(i * heads + h) * d + e] += pij * Double(v[(j * kvHeads + h / (heads / kvHeads)) * d + e]) }
                    }
                }
            }
            // A dot product of length T with Σ|p·v| ≤ 1: the class rule.
            let tolerance = 1e-5 * Double(keyCount).squareRoot()
            assertClose(out, expected, tolerance: { _ in tolerance }, "applyProbabilities heads=\(heads) kv=\(kvHeads) n=\(n) T=\(keyCount)")
        }
    }

    // MARK: embedding / dequantizeMatrix

    func testEmbeddingGathersDequantizedRows() throws {
        var random = TestRandom(#function)
        let vocabulary = 7, rowLength = 64
        for type in CPUQuantTestData.types {
            let (table, expected) = CPUQuantTestData.matrix(type, rows: vocabulary, cols: rowLength, random: &random)
            let ids = [3, 0, 6, 3, 1]
            var out = [Float](repeating: .nan, count: ids.count * rowLength)
            try table.withUnsafeBytes { bytes in
                try CPUKernels.embedding(table: bytes.baseAddress!, type: type, rowLength: rowLength,
                                         vocabularySize: vocabulary, tokenIds: ids, into: &out)
            }
            let gathered = ids.flatMap { id in expected[(id * rowLength)..<((id + 1) * rowLength)] }
            // Dequantization is d·q (+ m) with an f16 scale and small integer q: d·q is exact in
            // float32 and the one addition rounds once, as the Double reference rounded to Float does.
            XCTAssertEqual(out, gathered.map { Float($0) }, "embedding \(type)")
        }
    }

    func testEmbeddingRejectsOutOfRangeIds() {
        let table = [Float](repeating: 1, count: 4 * 3)
        for (ids, bad, index) in [([0, 4], 4, 1), ([-1], -1, 0), ([3, 2, 100], 100, 2)] {
            var out = [Float](repeating: -7, count: ids.count * 3)
            XCTAssertThrowsError(try table.withUnsafeBytes { bytes in
                try CPUKernels.embedding(table: bytes.baseAddress!, type: .f32, rowLength: 3, vocabularySize: 4,
                                         tokenIds: ids, into: &out)
            }) { error in
                XCTAssertEqual(error as? CPUKernelError, .tokenOutOfRange(id: bad, index: index, vocabularySize: 4))
                XCTAssertTrue("\(error)".contains("token id \(bad)"), "\(error)")
            }
            XCTAssertEqual(out, [Float](repeating: -7, count: ids.count * 3), "nothing written before the check")
        }
    }

    func testDequantizeMatrixMatchesReference() {
        var random = TestRandom(#function)
        for type in CPUQuantTestData.types {
            let colsList = type.isQuantized ? [32, 64, 576] : [1, 7, 33, 577]
            for cols in colsList {
                for rows in Self.oddSizes where rows * cols <= 577 * 64 {  // 577×64 takes the concurrent path
                    let (bytes, expected) = CPUQuantTestData.matrix(type, rows: rows, cols: cols, random: &random)
                    let out = bytes.withUnsafeBytes { CPUKernels.dequantizeMatrix(type, bytes: $0, rows: rows, cols: cols) }
                    // Exact, for the reason given in testEmbeddingGathersDequantizedRows.
                    XCTAssertEqual(out, expected.map { Float($0) }, "dequantizeMatrix \(type) \(rows)×\(cols)")
                }
            }
        }
    }
}

/// Random GGUF-encoded matrices with an independent float64 decoding, written from the block
/// layouts (not by calling ModelFormats), so the kernels are checked against a second reading.
enum CPUQuantTestData {
    /// The types this helper decodes; the others are checked against gguf.quants (DequantizeReferenceTests).
    static let types: [GGMLType] = [.f32, .f16, .bf16, .q8_0, .q4_0, .q4_1]

    static func matrix(_ type: GGMLType, rows: Int, cols: Int, random: inout TestRandom) -> (bytes: [UInt8], values: [Double]) {
        var bytes: [UInt8] = [], values: [Double] = []
        func appendHalf(_ x: Float) -> Double {
            let h = Float16(x)
            bytes += [UInt8(h.bitPattern & 0xFF), UInt8(h.bitPattern >> 8)]
            return Double(h)
        }
        for _ in 0..<rows {
            switch type {
            case .f32:
                for x in random.floats(cols, -4, 4) {
                    withUnsafeBytes(of: x.bitPattern.littleEndian) { bytes += $0 }
                    values.append(Double(x))
                }
            case .f16:
                for x in random.floats(cols, -4, 4) { values.append(appendHalf(x)) }
            case .bf16:
                for x in random.floats(cols, -4, 4) {
                    let top = UInt16(x.bitPattern >> 16)  // truncation is a valid bf16 value
                    bytes += [UInt8(top & 0xFF), UInt8(top >> 8)]
                    values.append(Double(Float(bitPattern: UInt32(top) << 16)))
                }
            case .q8_0:
                for _ in 0..<(cols / 32) {
                    let d = appendHalf(random.floats(1, 0.001, 0.1)[0])
                    for _ in 0..<32 {
                        let q = random.byte()
                        bytes.append(q)
                        values.append(d * Double(Int8(bitPattern: q)))
                    }
                }
            case .q4_0, .q4_1:
                for _ in 0..<(cols / 32) {
                    let d = appendHalf(random.floats(1, 0.001, 0.1)[0])
                    let m = type == .q4_1 ? appendHalf(random.floats(1, -1, 1)[0]) : 0
                    var block = [Double](repeating: 0, count: 32)
                    for j in 0..<16 {
                        let byte = random.byte()
                        bytes.append(byte)
                        let low = Double(byte & 0x0F), high = Double(byte >> 4)
                        block[j] = type == .q4_1 ? d * low + m : d * (low - 8)       // low nibble: element j
                        block[j + 16] = type == .q4_1 ? d * high + m : d * (high - 8) // high nibble: element j+16
                    }
                    values += block
                }
            case .q5_0, .q5_1, .q4_K, .q5_K, .q6_K:
                // Checked bit for bit against gguf.quants instead (DequantizeReferenceTests).
                preconditionFailure("CPUQuantTestData has no float64 reading of \(type)")
            }
        }
        return (bytes, values)
    }
}
