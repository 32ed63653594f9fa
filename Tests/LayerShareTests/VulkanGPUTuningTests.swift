import Foundation
import LayerShare
import VulkanCompute
import XCTest

/// The discrete-GPU choices (`KernelTuning.defaults(for:as: .discreteGPU)`) run on this device, so a
/// machine without a GPU still covers the GPU paths: row-major storage-buffer weights, matvec.comp
/// decode, tiled matmul.comp prefill, the non-lanes decode attention over storage-buffer caches.
/// Products and attention are compared with the CPU backend's kernels (CPUKernels: float32 on
/// OpenBLAS) on fresh random inputs, odd sizes and NaN-poisoned outputs.
final class VulkanGPUTuningTests: AttentionTestCase {
    var tuning: KernelTuning!

    override func setUpWithError() throws {
        try super.setUpWithError()
        // No LAYERSHARE_* overrides: the test must see the GPU choices whatever the shell sets.
        tuning = KernelTuning.defaults(for: device.info, as: .discreteGPU, environment: [:])
        kernels = try VulkanKernels(library: library, tuning: tuning)
        attention = VulkanAttention(library: library, tuning: tuning)
    }

    func testDiscreteGPUChoices() throws {
        XCTAssertEqual(tuning.weightTileRows, 1)
        XCTAssertEqual(tuning.decodeLanesRows, 0)
        XCTAssertFalse(tuning.prefillRegisterBlocked)
        XCTAssertFalse(tuning.matvecTexelWeights)
        XCTAssertFalse(tuning.attentionTexelCaches)
        XCTAssertFalse(tuning.attentionLanesDecode)
        XCTAssertTrue(tuning.stagedReads)
        XCTAssertFalse(attention.texelCaches)
        XCTAssertFalse(attention.lanesDecode)
        let bytes = random.matrixBytes(.q4_1, rows: 64, cols: 64)
        let weight = try bytes.withUnsafeBytes { try VulkanMatrix(device: device, type: .q4_1, rows: 64, cols: 64, bytes: $0, label: "W") }
        for type in [GGMLType.q4_1, .q8_0, .q5_0, .q5_1, .f16, .bf16, .f32] {
            XCTAssertEqual(kernels.productKernel(for: type, cols: 64, rows: 1), .matvec, "\(type)")
            XCTAssertEqual(kernels.productKernel(for: type, cols: 64, rows: 7), .tiled, "\(type)")
        }
        // Nothing fuses: the backend runs the separate ops.
        for rows in [1, 7] {
            XCTAssertFalse(kernels.canFuse(weight: weight, rows: rows, output: VulkanKernels.ProductOutput.accumulate(weight.buffer)))
        }
        XCTAssertNil(kernels.nextNormPartials(weight: weight))
        XCTAssertEqual(try attention.plan(rows: 1, startPosition: 40, heads: 9, kvHeads: 3, headDim: 64).kernel, "attention_decode.comp")
        XCTAssertEqual(try attention.plan(rows: 7, startPosition: 0, heads: 9, kvHeads: 3, headDim: 64).kernel, "attention.comp")
    }

    /// The environment overrides are read by `defaults` alone; the CPU-driver choices are the ones
    /// the lavapipe defaults have always had.
    func testDefaultsAndOverrides() {
        let info = device.info
        let subgroup = max(1, info.subgroupSize)
        var pow2 = 1
        while pow2 * 2 <= subgroup { pow2 *= 2 }
        let cpu = KernelTuning.defaults(for: info, as: .cpu, environment: [:])
        XCTAssertEqual(cpu.decodeLanesRows, 4)
        XCTAssertEqual(cpu.weightTileRows, 2 * pow2)
        XCTAssertEqual(cpu.matvecRows, 64)
        XCTAssertEqual([cpu.prefillWeightRows, cpu.prefillActivationRows], [8, 8])
        XCTAssertTrue(cpu.prefillRegisterBlocked && cpu.prefillLanes && cpu.matvecTexelWeights && cpu.texelActivations)
        XCTAssertTrue(cpu.attentionTexelCaches)
        XCTAssertEqual(cpu.attentionLanesDecode, info.supportsSubgroupBallot)
        XCTAssertEqual(cpu.stagedReads, !info.unifiedMemory)
        if info.kind == .cpu {
            XCTAssertEqual(KernelTuning.defaults(for: info, environment: [:]).description, cpu.description)
        }
        let overridden = KernelTuning.defaults(for: info, as: .cpu, environment: [
            "LAYERSHARE_DECODE_LANES": "0", "LAYERSHARE_TEXEL_WEIGHTS": "0", "LAYERSHARE_PREFILL_TILE": "4x2",
            "LAYERSHARE_WEIGHT_TILE": "8", "LAYERSHARE_ATTENTION_TEXEL": "0",
        ])
        XCTAssertEqual(overridden.decodeLanesRows, 0)
        XCTAssertFalse(overridden.matvecTexelWeights)
        XCTAssertEqual([overridden.prefillWeightRows, overridden.prefillActivationRows], [4, 2])
        XCTAssertEqual(overridden.weightTileRows, 8)
        XCTAssertFalse(overridden.attentionTexelCaches)
        XCTAssertFalse(overridden.attentionLanesDecode, "lanes decode follows texel caches unless set")
        let lanes = KernelTuning.defaults(for: info, as: .discreteGPU, environment: ["LAYERSHARE_ATTENTION_LANES": "1"])
        XCTAssertEqual(lanes.attentionLanesDecode, info.supportsSubgroupBallot)
        XCTAssertFalse(lanes.attentionTexelCaches)
    }

    // MARK: - Products

    /// Error metric per output: |y_gpu − y_cpu| / Σ_i |x_i·w_i| (the magnitude sum in float64). Both
    /// sides multiply the same dequantized weights (bit-exact on the GPU: testDequantizationIsBitExact)
    /// and sum K float32 products in some order, each within K·2⁻²⁴·Σ|x_i·w_i| of the exact value
    /// (the Q4 kernels' d·Σq·x + m·Σx regrouping within twice that, as in VulkanKernelMatmulTests), so
    /// they differ by at most 3·K·2⁻²⁴ of it; the bound is 4·K·2⁻²⁴. A wrong element, index or block
    /// layout gives errors of order 1.
    func testProductsMatchCPUKernels() throws {
        // (weight rows, cols, activation rows): decode through matvec.comp, prefill through
        // matmul.comp with partial tiles in both directions (the tile is 64 × 64 at most).
        let quantized = [(1, 32, 1), (33, 576, 1), (577, 96, 1), (7, 64, 7), (65, 576, 33), (97, 160, 19)]
        let kQuant = [(1, 256, 1), (33, 512, 1), (7, 256, 7), (65, 768, 33)]
        let float = [(7, 1, 1), (33, 577, 1), (577, 33, 7), (65, 7, 33)]
        var worst = 0.0
        for type in [GGMLType.q4_0, .q4_1, .q8_0, .q5_0, .q5_1, .q4_K, .q5_K, .q6_K, .f16, .f32] {
            for (index, (outRows, cols, rows)) in (type.isKQuant ? kQuant : type.isQuantized ? quantized : float).enumerated() {
                worst = max(worst, try checkProduct(type: type, outRows: outRows, cols: cols, rows: rows,
                                                    xOffset: index % 3, yOffset: (index * 5) % 7))
            }
        }
        print("GPU-tuned products vs CPUKernels: worst error \(worst) of the bound")
    }

    /// One product on both sides; returns the worst error as a fraction of the bound.
    func checkProduct(type: GGMLType, outRows: Int, cols: Int, rows: Int, xOffset: Int, yOffset: Int) throws -> Double {
        let what = "\(type) O=\(outRows) K=\(cols) R=\(rows)"
        let bytes = random.matrixBytes(type, rows: outRows, cols: cols)
        let w = bytes.withUnsafeBytes { CPUKernels.dequantizeMatrix(type, bytes: $0, rows: outRows, cols: cols) }
        let weight = try bytes.withUnsafeBytes {
            try VulkanMatrix(device: device, type: type, rows: outRows, cols: cols, bytes: $0, tileRows: tuning.weightTileRows, label: "W")
        }
        let x = random.floats(xOffset + rows * cols)
        let xBuffer = try buffer(x, label: "x")
        let yCount = yOffset + rows * outRows + 3
        let yBuffer = try poisoned(yCount, label: "y")
        try run { try kernels.matmul($0, weight: weight, x: xBuffer, xOffset: xOffset, y: yBuffer, yOffset: yOffset, rows: rows, label: what) }
        let y = try download(yBuffer, count: yCount)
        var expected = [Float](repeating: .nan, count: rows * outRows)
        x.withUnsafeBufferPointer { xp in
            CPUKernels.matmul(xp.baseAddress! + xOffset, rows: rows, inDim: cols, weight: w, outDim: outRows, into: &expected)
        }
        let bound = 4 * Double(cols) * 0x1p-24
        var worst = 0.0
        for r in 0..<rows {
            for o in 0..<outRows {
                var magnitude = 0.0
                for i in 0..<cols { magnitude += abs(Double(x[xOffset + r * cols + i]) * Double(w[o * cols + i])) }
                let got = y[yOffset + r * outRows + o], want = expected[r * outRows + o]
                let error = got.isNaN ? .infinity : abs(Double(got) - Double(want)) / (magnitude + 1e-30) / bound
                worst = max(worst, error)
                if !(error <= 1) {
                    XCTFail("\(what): y[\(r), \(o)] = \(got), CPU \(want) (\(error) of the bound)")
                    return worst
                }
            }
        }
        for i in Array(0..<yOffset) + Array((yOffset + rows * outRows)..<yCount) where y[i].bitPattern != Self.poison {
            XCTFail("\(what): y[\(i)] outside the output was written")
            break
        }
        return worst
    }

    // MARK: - Attention

    /// Error metric: max |O_gpu − O_cpu| / max |V| over every output, and max |P_gpu − P_cpu| over the
    /// emitted probabilities. VulkanAttentionTests bounds the GPU's error against exact attention by
    /// 1e-5 of max |V| (outputs are convex combinations of V rows; float32 dot products, exp and
    /// sums over T ≤ 2049 keys); CPUKernels computes the same float32 scores, softmax and P·V sums in
    /// another order and obeys the same bound, so the two differ by at most 2e-5. The same holds for
    /// probabilities (each ≤ 1) and for applying P to another V (a convex combination again).
    static let tolerance = 2e-5

    func testPrefillMatchesCPUKernels() throws {
        for (heads, kvHeads, d, n, start) in [(9, 3, 64, 7, 0), (9, 3, 64, 33, 37), (6, 2, 128, 19, 5), (8, 2, 80, 33, 0)] {
            _ = try checkAttention(heads: heads, kvHeads: kvHeads, headDim: d, rows: n, start: start, emit: false)
        }
    }

    /// Decode in one workgroup and split over several (T > 256: merged with log-sum-exp), with the
    /// probabilities emitted, then applied to another layer's V.
    func testDecodeEmitAndApplyMatchCPUKernels() throws {
        for (heads, kvHeads, d, t, emit) in [(9, 3, 64, 1, true), (9, 3, 64, 41, false), (9, 3, 64, 300, true),
                                             (4, 4, 128, 513, true), (8, 2, 80, 300, true)] {
            let p = try checkAttention(heads: heads, kvHeads: kvHeads, headDim: d, rows: 1, start: t - 1, emit: emit)
            if emit { try checkApply(p, heads: heads, kvHeads: kvHeads, headDim: d, context: t) }
        }
    }

    /// Attention on both sides with NaN-poisoned outputs and NaN cache rows past the context;
    /// returns the GPU's probabilities (decode with `emit`).
    func checkAttention(heads: Int, kvHeads: Int, headDim d: Int, rows n: Int, start: Int, emit: Bool) throws -> [Float] {
        let what = "heads \(heads)/\(kvHeads) d\(d) n=\(n) start=\(start)\(emit ? " +P" : "")"
        let total = start + n, capacity = total + 3
        let q = random.floats(n * heads * d)
        let k = random.floats(total * kvHeads * d)
        let v = random.floats(total * kvHeads * d, -2, 2)
        let nanRows = [Float](repeating: .nan, count: (capacity - total) * kvHeads * d)
        let qBuffer = try buffer(q, label: "q"), kBuffer = try buffer(k + nanRows, label: "k"), vBuffer = try buffer(v + nanRows, label: "v")
        let out = try poisoned(n * heads * d, label: "out")
        let scratch = try poisoned(VulkanAttention.scratchBytes(heads: heads, headDim: d, maxContext: total) / 4, label: "scratch")
        let probabilities = emit ? try poisoned(heads * total, label: "P") : nil
        try run {
            try attention.attention($0, q: qBuffer, k: kBuffer, v: vBuffer, out: out, scratch: scratch, rows: n, startPosition: start,
                                    heads: heads, kvHeads: kvHeads, headDim: d, scale: 1 / Float(d).squareRoot(),
                                    probabilities: probabilities, label: what)
        }
        var expected = [Float](repeating: .nan, count: n * heads * d)
        var expectedP = [Float](repeating: .nan, count: heads * n * total)
        CPUKernels.attention(q: q, k: k, v: v, out: &expected, queryCount: n, keyCount: total, heads: heads, kvHeads: kvHeads,
                             headDim: d, queryStart: start, probabilitiesOut: &expectedP)
        let error = maxAbsError(try download(out, count: n * heads * d), expected.map(Double.init)) / maxMagnitude(v)
        var line = "\(what): output error \(String(format: "%.2e", error))"
        XCTAssertLessThanOrEqual(error, Self.tolerance, "\(what): output")
        guard let probabilities else { print(line); return [] }
        let gpuP = try download(probabilities, count: heads * total)
        let errorP = maxAbsError(gpuP, expectedP.map(Double.init))
        line += String(format: ", P error %.2e", errorP)
        print(line)
        XCTAssertLessThanOrEqual(errorP, Self.tolerance, "\(what): probabilities")
        return gpuP
    }

    /// The GPU's probabilities applied to a fresh V (NaN past the context) on both sides.
    func checkApply(_ p: [Float], heads: Int, kvHeads: Int, headDim d: Int, context t: Int) throws {
        let v = random.floats(t * kvHeads * d, -3, 3)
        let pBuffer = try buffer(p, label: "P")
        let vBuffer = try buffer(v + [Float](repeating: .nan, count: 2 * kvHeads * d), label: "v other")
        let out = try poisoned(heads * d, label: "applied")
        try run {
            try attention.applyProbabilities($0, probabilities: pBuffer, v: vBuffer, out: out, context: t,
                                             heads: heads, kvHeads: kvHeads, headDim: d, label: "apply")
        }
        var expected = [Float](repeating: .nan, count: heads * d)
        CPUKernels.applyProbabilities(p, v: v, out: &expected, queryCount: 1, keyCount: t, heads: heads, kvHeads: kvHeads, headDim: d)
        let error = maxAbsError(try download(out, count: heads * d), expected.map(Double.init)) / maxMagnitude(v)
        print("  apply T=\(t): error \(String(format: "%.2e", error))")
        XCTAssertLessThanOrEqual(error, Self.tolerance, "apply heads \(heads)/\(kvHeads) d\(d) T=\(t)")
    }
}
