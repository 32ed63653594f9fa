import Foundation
import LayerShare
import XCTest

/// Matrix products (decode matvec and prefill matmul) against a float64 reference over weights
/// dequantized by ModelFormats.Dequantize.row, plus bit-exact GPU dequantization.
final class VulkanKernelMatmulTests: VulkanKernelTestCase {
    static let types: [GGMLType] = [.f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .q5_0, .q5_1]

    /// (weight rows O, cols K, activation rows R). Quantized K must be a multiple of 32.
    static let quantizedShapes: [(Int, Int, Int)] = [
        (1, 32, 1), (7, 64, 1), (33, 576, 1), (577, 1536, 1), (1536, 576, 1),
        (7, 32, 7), (577, 576, 7), (33, 1536, 33), (1, 64, 33), (65, 96, 2),
    ]
    static let floatShapes: [(Int, Int, Int)] = [
        (7, 1, 1), (33, 7, 1), (577, 33, 1), (1, 1537, 1), (7, 577, 1),
        (33, 7, 7), (577, 33, 2), (7, 1537, 33), (1, 577, 7),
    ]

    /// Float rows of whole 32-element blocks: matmul_lanes.comp reads them as blocks (Shaders/
    /// float_blocks.glsl) wherever the quantized types use it; odd row counts, partial workgroups.
    static let floatBlockShapes: [(Int, Int, Int)] = [
        (1, 32, 1), (7, 64, 1), (33, 576, 1), (577, 1536, 1), (7, 96, 3), (33, 576, 9), (65, 32, 17),
    ]

    /// Rows per tile of the quantized weights' stored order (VulkanMatrix.tileRows) in checkMatmul;
    /// nil: the tuning's choice, as the backend makes them.
    var weightTile: Int?

    /// Error metric: max over outputs of |y − ref| / Σ_i |x_i·w_i| (ref and the magnitude sum in float64).
    /// Any float32 summation order of K products has error ≤ γ_K·Σ|x_i·w_i| with γ_K ≈ K·2⁻²⁴, so
    /// the threshold is 2·K·2⁻²⁴ (the factor 2 covers the Q4 kernels' d·Σq·x + m·Σx regrouping);
    /// a wrong element, index or block layout gives errors of order 1. Observed maxima are printed.
    func checkMatmul(type: GGMLType, outRows: Int, cols: Int, rows: Int, xOffset: Int, yOffset: Int,
                     xStride: Int? = nil, yStride: Int? = nil) throws -> Double {
        let bytes = random.matrixBytes(type, rows: outRows, cols: cols)
        let w = referenceRows(type, bytes, rows: outRows, cols: cols)
        let weight = try bytes.withUnsafeBytes {
            try VulkanMatrix(device: device, type: type, rows: outRows, cols: cols, bytes: $0,
                             tileRows: weightTile ?? kernels.tuning.weightTileRows, label: "W \(type)")
        }
        let xs = xStride ?? cols, ys = yStride ?? outRows
        let xCount = xOffset + (rows - 1) * xs + cols
        let x = random.floats(xCount)
        let xBuffer = try buffer(x, label: "x")
        let yCount = yOffset + (rows - 1) * ys + outRows + 3
        let yBuffer = try poisoned(yCount, label: "y")
        try run { batch in
            try kernels.matmul(batch, weight: weight, x: xBuffer, xOffset: xOffset, y: yBuffer, yOffset: yOffset, rows: rows,
                               xStride: xStride, yStride: yStride, label: "test")
        }
        let y = try download(yBuffer, count: yCount)
        var worst = 0.0
        for r in 0..<rows {
            for o in 0..<outRows {
                var sum = 0.0, magnitude = 0.0
                for i in 0..<cols {
                    let p = Double(x[xOffset + r * xs + i]) * Double(w[o * cols + i])
                    sum += p
                    magnitude += abs(p)
                }
                let got = y[yOffset + r * ys + o]
                let error = got.isNaN ? .infinity : abs(Double(got) - sum) / (magnitude + 1e-30)
                worst = max(worst, error)
                let bound = 2 * Double(max(cols, 8)) * 0x1p-24
                if !(error <= bound) {
                    XCTFail("\(type) O=\(outRows) K=\(cols) R=\(rows): y[\(r), \(o)] = \(got), expected \(sum) (relative error \(error) > \(bound))")
                    return worst
                }
            }
        }
        // Elements outside the written ranges keep the poison.
        var written = Set<Int>()
        for r in 0..<rows { for o in 0..<outRows { written.insert(yOffset + r * ys + o) } }
        for i in 0..<yCount where !written.contains(i) {
            XCTAssertEqual(y[i].bitPattern, Self.poison, "\(type): y[\(i)] outside the output was written")
            break
        }
        return worst
    }

    func testMatmulQuantized() throws {
        try checkBothWeightPaths { try checkBothPrefillKernels { try quantizedCases() } }
    }

    /// Decode runs in matmul_lanes.comp on CPU-type devices; matvec.comp (the GPUs' decode kernel)
    /// is checked here whatever the device's default.
    func testMatvecKernelForDecode() throws {
        var t = kernels.tuning
        t.decodeLanesRows = 0
        kernels = try VulkanKernels(library: library, tuning: t)
        try checkBothWeightPaths { try quantizedCases(decodeOnly: true) }
    }

    /// Runs `body` with quantized weights read through texel views (where the device supports
    /// them), then as storage buffers, whatever the device's default is.
    func checkBothWeightPaths(_ body: () throws -> Void) throws {
        let base = kernels.tuning
        for texel in [true, false] {
            var t = base
            t.matvecTexelWeights = texel
            kernels = try VulkanKernels(library: library, tuning: t)
            print("… quantized weights read as \(texel ? "texel views" : "storage buffers"):")
            try body()
        }
        kernels = try VulkanKernels(library: library, tuning: base)
    }

    func testQuantizedMatricesHaveTexelViews() throws {
        guard device.supportsUniformTexelBuffer(.rgba32Uint) else { throw XCTSkip("no R32G32B32A32_UINT texel buffers") }
        for type in Self.types {
            let bytes = random.matrixBytes(type, rows: 3, cols: 64)
            let m = try bytes.withUnsafeBytes { try VulkanMatrix(device: device, type: type, rows: 3, cols: 64, bytes: $0, label: "m") }
            XCTAssertNotNil(m.texelView, "\(type)")  // float rows of whole 32-element blocks too
            if let v = m.texelView { XCTAssertEqual(v.range, m.paddedByteCount); XCTAssertEqual(m.paddedByteCount % 16, 0) }
            if !type.isQuantized {  // other float rows are read element by element (matvec.comp)
                let odd = random.matrixBytes(type, rows: 3, cols: 33)
                let m = try odd.withUnsafeBytes { try VulkanMatrix(device: device, type: type, rows: 3, cols: 33, bytes: $0, label: "m") }
                XCTAssertNil(m.texelView, "\(type) with 33 columns")
            }
        }
    }

    func testMatmulFloat() throws {
        try checkBothPrefillKernels { try floatCases() }
    }

    /// Float weights in blocks: lanes decode and prefill (both weight reads), then the same shapes
    /// through matvec.comp's per-element path (`floatLanes` off, the GPUs' and LAYERSHARE_FLOAT_LANES=0's).
    func testMatmulFloatBlocks() throws {
        try checkBothWeightPaths { try checkBothPrefillKernels { try floatCases(shapes: Self.floatBlockShapes) } }
        var t = kernels.tuning
        t.floatLanes = false
        kernels = try VulkanKernels(library: library, tuning: t)
        print("… float weights through matvec.comp:")
        try floatCases(shapes: Self.floatBlockShapes)
    }

    /// Runs `body` with the device's default tuning, then with the other prefill kernel.
    /// Every quantized and float-block kernel (decode lanes and matvec.comp, both prefill kernels) on weights stored
    /// row-major and in tiles of 4 rows (the shapes' 7, 33, 65 and 577 rows end in a partial tile);
    /// the other tests use the tuning's tiles (32 rows on CPU drivers, row-major on GPUs).
    func testTiledWeightLayouts() throws {
        let base = kernels.tuning
        for tile in [1, 4] {
            weightTile = tile
            print("… weights in tiles of \(tile) rows:")
            kernels = try VulkanKernels(library: library, tuning: base)
            try checkBothPrefillKernels { try quantizedCases(); try floatCases(shapes: Self.floatBlockShapes) }
            var t = base
            t.decodeLanesRows = 0
            kernels = try VulkanKernels(library: library, tuning: t)
            try quantizedCases(decodeOnly: true)
            try floatCases(shapes: Self.floatBlockShapes.filter { $0.2 == 1 })
        }
    }

    func checkBothPrefillKernels(_ body: () throws -> Void) throws {
        try body()
        var t = kernels.tuning
        t.prefillRegisterBlocked.toggle()
        kernels = try VulkanKernels(library: library, tuning: t)
        print("… with the \(t.prefillRegisterBlocked ? "register-blocked" : "tiled") prefill kernel:")
        try body()
    }

    func quantizedCases(decodeOnly: Bool = false) throws {
        for type in Self.types where type.isQuantized {
            var worst = 0.0
            for (index, (o, k, r)) in Self.quantizedShapes.enumerated() where !decodeOnly || r == 1 {
                worst = max(worst, try checkMatmul(type: type, outRows: o, cols: k, rows: r,
                                                   xOffset: index % 3, yOffset: (index * 5) % 7))
            }
            print("matmul \(type): max relative error \(worst)")
        }
    }

    func floatCases(shapes: [(Int, Int, Int)] = floatShapes) throws {
        for type in Self.types where !type.isQuantized {
            var worst = 0.0
            for (index, (o, k, r)) in shapes.enumerated() {
                worst = max(worst, try checkMatmul(type: type, outRows: o, cols: k, rows: r,
                                                   xOffset: index % 4, yOffset: index % 3))
            }
            print("matmul \(type): max relative error \(worst)")
        }
    }

    func testMatmulStridesWriteIntoPartOfBuffer() throws {
        // Rows of x and y farther apart than packed (e.g. writing Q, K, V side by side).
        try checkBothWeightPaths {
            for type: GGMLType in [.q4_0, .q8_0, .f16] {
                _ = try checkMatmul(type: type, outRows: 33, cols: 64, rows: 5, xOffset: 1, yOffset: 9, xStride: 70, yStride: 100)
                _ = try checkMatmul(type: type, outRows: 7, cols: 96, rows: 1, xOffset: 2, yOffset: 40, xStride: 96, yStride: 50)
                // 4-float aligned offset and stride: x is read through its RGBA32F texel view.
                _ = try checkMatmul(type: type, outRows: 33, cols: 64, rows: 5, xOffset: 4, yOffset: 3, xStride: 72, yStride: 40)
            }
        }
    }

    /// BF16 is stored as it comes (2 bytes per weight, not widened), and the embedding kernel
    /// decodes it exactly (the top half of a float32).
    func testBF16IsStoredAsIs() throws {
        let rows = 5, cols = 33
        let bytes = random.matrixBytes(.bf16, rows: rows, cols: cols)
        let m = try bytes.withUnsafeBytes { try VulkanMatrix(device: device, type: .bf16, rows: rows, cols: cols, bytes: $0, label: "bf16") }
        XCTAssertEqual(m.type, .bf16)
        XCTAssertEqual(m.byteCount, rows * cols * 2)
        XCTAssertEqual(try m.buffer.download(UInt8.self, count: bytes.count), bytes)
    }

    func testManyRowsFoldIntoSecondGridDimension() throws {
        // One row per workgroup and more rows than maxComputeWorkGroupCount.x: the grid folds into y.
        let limit = device.info.maxWorkgroupCount.0
        guard limit < 1 << 20 else { throw XCTSkip("grid limit \(limit) too large to exceed cheaply") }
        var t = kernels.tuning
        t.matvecRows = 1
        kernels = try VulkanKernels(library: library, tuning: t)
        let error = try checkMatmul(type: .q4_0, outRows: limit + 37, cols: 32, rows: 1, xOffset: 0, yOffset: 0)
        print("folded matvec: max relative error \(error)")
    }

    func testTuningVariantsAgree() throws {
        // The launch-shape knobs, both prefill kernels and the reduction path must not change results:
        // several invocations per block, more rows per workgroup than invocations (and than one
        // subgroup), several subgroups, and the shared-memory tree instead of subgroupAdd.
        let base = kernels.tuning
        let subgroup = max(1, device.info.subgroupSize)
        for (useSubgroups, configs) in [(true, [(32, 2, 4), (4, 5, 2)]), (false, [(2 * subgroup, 4 * subgroup + 1, 1)])] {
            for (wg, rowsPer, parts) in configs { for texel in [true, false] { for lanes in [true, false] {
                // Quantized prefill as matmul_lanes.comp and as matvec.comp's split-K form.
                if parts == 4, !lanes { continue }  // the tiled kernel ignores prefillLanes
                var t = base
                t.prefillLanes = lanes
                t.matvecTexelWeights = texel  // texel views with every chunk size too
                t.matvecWorkgroup = wg; t.matvecRows = rowsPer; t.matvecParts = parts
                // Prefill alternates between the two kernels; the register-blocked one with
                // tiles that do not divide the shapes.
                t.prefillRegisterBlocked = parts != 4
                t.prefillWeightRows = rowsPer; t.prefillActivationRows = 3
                t.gemmBM = 32; t.gemmBN = 16; t.gemmTM = 2; t.gemmTN = 4
                t.reduceWorkgroup = wg
                kernels = try VulkanKernels(library: library, tuning: t, useSubgroupArithmetic: useSubgroups)
                for type in [GGMLType.q4_1, .q8_0, .q4_0, .q5_0, .q5_1, .f16] {
                    _ = try checkMatmul(type: type, outRows: 75, cols: 160, rows: 1, xOffset: 1, yOffset: 0)
                    _ = try checkMatmul(type: type, outRows: 37, cols: 160, rows: 19, xOffset: 0, yOffset: 2)
                    _ = try checkMatmul(type: type, outRows: 37, cols: 160, rows: 5, xOffset: 3, yOffset: 2)  // x unaligned
                }
            } } }
        }
    }

    /// Prefill matmul speed (LAYERSHARE_PREFILL_BENCH=1 to run; only prints).
    func testPrefillMatmulSpeed() throws {
        guard ProcessInfo.processInfo.environment["LAYERSHARE_PREFILL_BENCH"] == "1" else { throw XCTSkip("set LAYERSHARE_PREFILL_BENCH=1") }
        print("prefill tuning: \(kernels.tuning)")
        for r in try VulkanKernelBench.standardPrefillReport(kernels) { print("prefill \(r)") }
    }

    // MARK: - Dequantization

    /// The embedding kernel is the GPU dequantization path: its rows must equal Dequantize.row bit
    /// for bit, for random blocks with scales over the whole f16 range (both signs, subnormal, zero,
    /// large) and random quants — and rows starting on both even and odd blocks (3 blocks per row).
    /// Tables in tiles of 1, 4 and 32 rows (41 rows: the last tile is partial).
    func testDequantizationIsBitExact() throws {
        // Floats: any row length row-major, whole blocks in tiles.
        for tile in [1, 4, 32] { for type in Self.types { try checkEmbeddingBitExact(type: type, cols: type.isQuantized || tile > 1 ? 96 : 35, tile: tile) } }
    }

    /// One table of 41 rows, every row looked up and 9 at random: the rows equal Dequantize.row bit for bit.
    func checkEmbeddingBitExact(type: GGMLType, cols: Int, tile: Int) throws {
        let vocab = 41
        let bytes = random.matrixBytes(type, rows: vocab, cols: cols, wide: true)
        let expected = referenceRows(type, bytes, rows: vocab, cols: cols)
        let table = try bytes.withUnsafeBytes {
            try VulkanMatrix(device: device, type: type, rows: vocab, cols: cols, bytes: $0, tileRows: tile, label: "table \(type)")
        }
        let ids = (0..<vocab).map { UInt32($0) } + (0..<9).map { _ in UInt32(random.int(0...(vocab - 1))) }
        let tokens = try buffer(ids, label: "tokens")
        let out = try poisoned(ids.count * cols)
        try run { try kernels.embedding($0, table: table, tokens: tokens, out: out, rows: ids.count) }
        let got = try download(out, count: ids.count * cols)
        var mismatches = 0
        for (r, id) in ids.enumerated() {
            for c in 0..<cols where got[r * cols + c].bitPattern != expected[Int(id) * cols + c].bitPattern {
                if mismatches == 0 {
                    XCTFail("\(type), tiles of \(tile): row \(id) element \(c): GPU \(got[r * cols + c]) (0x\(String(got[r * cols + c].bitPattern, radix: 16))) "
                            + "vs Dequantize.row \(expected[Int(id) * cols + c])")
                }
                mismatches += 1
            }
        }
        XCTAssertEqual(mismatches, 0, "\(type), tiles of \(tile): \(mismatches) elements differ")
    }

    func testEmbeddingOffsetsAndStride() throws {
        let type = GGMLType.q8_0, cols = 64, vocab = 10
        let bytes = random.matrixBytes(type, rows: vocab, cols: cols)
        let expected = referenceRows(type, bytes, rows: vocab, cols: cols)
        let table = try bytes.withUnsafeBytes { try VulkanMatrix(device: device, type: type, rows: vocab, cols: cols, bytes: $0, label: "t") }
        let ids: [UInt32] = [99, 3, 7, 0, 9]  // the first is skipped by tokenOffset
        let tokens = try buffer(ids, label: "tokens")
        let stride = 70, offset = 5, rows = 4
        let count = offset + (rows - 1) * stride + cols
        let out = try poisoned(count)
        try run { try kernels.embedding($0, table: table, tokens: tokens, tokenOffset: 1, out: out, outOffset: offset, rows: rows, outStride: stride) }
        let got = try download(out, count: count)
        for r in 0..<rows {
            let id = Int(ids[r + 1])
            XCTAssertEqual(Array(got[(offset + r * stride)..<(offset + r * stride + cols)]).map(\.bitPattern),
                           Array(expected[(id * cols)..<(id * cols + cols)]).map(\.bitPattern), "row \(r)")
        }
        XCTAssertEqual(got[offset + cols].bitPattern, Self.poison, "gap between rows must stay untouched")
    }

    /// Ids ≥ vocab (including 0xFFFFFFFF, whose row offset would wrap 32-bit arithmetic) must not
    /// address the table: those rows come out NaN, the others are still correct.
    func testOutOfRangeTokenGivesNaNRow() throws {
        for type in [GGMLType.q4_1, .f16] {
            let cols = 64, vocab = 5
            let bytes = random.matrixBytes(type, rows: vocab, cols: cols)
            let expected = referenceRows(type, bytes, rows: vocab, cols: cols)
            let table = try bytes.withUnsafeBytes { try VulkanMatrix(device: device, type: type, rows: vocab, cols: cols, bytes: $0, label: "t") }
            let ids: [UInt32] = [2, UInt32(vocab), 0xFFFF_FFFF, 4, 1 << 31]
            let tokens = try buffer(ids, label: "tokens")
            let out = try poisoned(ids.count * cols)
            try run { try kernels.embedding($0, table: table, tokens: tokens, out: out, rows: ids.count) }
            let got = try download(out, count: ids.count * cols)
            for (r, id) in ids.enumerated() {
                let row = Array(got[(r * cols)..<((r + 1) * cols)])
                if id < vocab {
                    XCTAssertEqual(row.map(\.bitPattern), Array(expected[(Int(id) * cols)..<(Int(id) * cols + cols)]).map(\.bitPattern))
                } else {
                    XCTAssertTrue(row.allSatisfy(\.isNaN), "\(type): row for id \(id) should be NaN")
                }
            }
        }
    }

    // MARK: - Argument validation

    func testInvalidArgumentsThrowClearErrors() throws {
        let q = random.matrixBytes(.q8_0, rows: 4, cols: 64)
        let weight = try q.withUnsafeBytes { try VulkanMatrix(device: device, type: .q8_0, rows: 4, cols: 64, bytes: $0, label: "blk.0.ffn_up") }
        let x32 = try buffer(random.floats(32), label: "x32")
        let y = try poisoned(16)
        let batch = try CommandBatch(device: device)
        try batch.begin()
        func expect(_ fragment: String, _ body: () throws -> Void) {
            XCTAssertThrowsError(try body()) { error in
                XCTAssertTrue("\(error)".contains(fragment), "error should mention '\(fragment)': \(error)")
            }
        }
        // x holds 32 floats but the weight has 64 columns.
        expect("x needs floats 0..<64") { try kernels.matmul(batch, weight: weight, x: x32, y: y, rows: 1, label: "up") }
        expect("blk.0.ffn_up") { try kernels.matmul(batch, weight: weight, x: x32, y: y, rows: 1, label: "up") }
        // y too small for 2 rows × 4 outputs at offset 10.
        let x128 = try buffer(random.floats(128), label: "x128")
        expect("y needs") { try kernels.matmul(batch, weight: weight, x: x128, y: y, yOffset: 10, rows: 2, label: "up") }
        expect("rows must be") { try kernels.matmul(batch, weight: weight, x: x128, y: y, rows: 0, label: "up") }
        // Quantized rows need whole blocks; the byte count must match the shape.
        expect("multiple of 32") {
            _ = try q.withUnsafeBytes { try VulkanMatrix(device: device, type: .q8_0, rows: 4, cols: 48, bytes: $0, label: "bad") }
        }
        expect("takes 272 bytes") {
            _ = try q.withUnsafeBytes { try VulkanMatrix(device: device, type: .q8_0, rows: 2, cols: 128, bytes: UnsafeRawBufferPointer(rebasing: $0[0..<100]), label: "bad") }
        }
        let norm = try buffer(random.floats(8), label: "norm")
        expect("weight needs") { try kernels.rmsnorm(batch, x: x32, weight: norm, y: x128, rows: 2, dim: 16, eps: 1e-5) }
        expect("headDim must be even") {
            try kernels.rope(batch, x: x32, rows: 1, heads: 1, headDim: 7, startPosition: 0, theta: 10000, layout: .adjacentPairs)
        }
        expect("out overlaps b") { try kernels.add(batch, a: x32, b: x128, bOffset: 0, out: x128, outOffset: 4, count: 16) }
        let tokens = try buffer([UInt32](repeating: 0, count: 4), label: "tokens")
        expect("out needs") { try kernels.embedding(batch, table: weight, tokens: tokens, out: y, rows: 4) }
        try batch.submit()
        try batch.wait()
    }

    func testOversizedMatrixNamesTensor() throws {
        let limit = device.info.maxStorageBufferRange
        let cols = 4096
        let rows = limit / (cols * 4) + 1  // F32 rows just past the limit
        guard rows * cols * 4 < 1 << 31 else { throw XCTSkip("maxStorageBufferRange too large to exceed in a test") }
        // Only the size check runs: the bytes are never read when the shape is too big.
        let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: rows * cols * 4, alignment: 16)
        defer { bytes.deallocate() }
        XCTAssertThrowsError(try VulkanMatrix(device: device, type: .f32, rows: rows, cols: cols, bytes: UnsafeRawBufferPointer(bytes), label: "output.weight")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("output.weight") && text.contains("maxStorageBufferRange"), text)
        }
    }
}

/// How the Vulkan backend loads vectors (norm weights).
final class VulkanVectorWeightTests: XCTestCase {
    /// Norm weights stored as F16 or BF16 (HF directories in those types) are loaded as floats: the
    /// norm kernels read float32 (an F16 norm vector once failed with "weight needs floats 0..<576").
    func testVectorsLoadAsFloatsWhateverTheirType() throws {
        var random = TestRandom(#function)
        let device = try VulkanDevice()
        let backend = try VulkanBackend(device: device)
        for type in [GGMLType.f16, .bf16, .f32] {
            let bytes = random.matrixBytes(type, rows: 1, cols: 577)
            let tensor = WeightTensorTestSupport.tensor(type, rows: 1, cols: 577, bytes: bytes)
            let vector = WeightTensor(name: "norm \(type)", type: type, shape: [577], data: tensor.data, owner: tensor.owner)
            let m = try backend.loadWeight(vector)
            XCTAssertEqual(m.type, .f32, "\(type)")
            let stored = try m.buffer.download(Float.self, count: 577)
            XCTAssertEqual(stored.map(\.bitPattern), referenceRows(type, bytes, rows: 1, cols: 577).map(\.bitPattern), "\(type)")
            let x = try backend.makeTensor(577, label: "x"), y = try backend.makeTensor(577, label: "y")
            try x.buffer.upload(random.floats(577))
            XCTAssertNoThrow(try backend.rmsnorm(x, weight: m, into: y, rows: 1, dim: 577, eps: 1e-5), "\(type)")
            try backend.finish()
        }
        if let messages = device.instance.validationLog?.messages { XCTAssertEqual(messages, []) }
    }
}
