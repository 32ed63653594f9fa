import Foundation
import LayerShare
import VulkanCompute
import XCTest

/// The LiSA runtime on Vulkan (rope.comp SELECTED_PAIRS, lisa.comp) against the CPU backend, op by
/// op on random inputs with odd sizes: outputs start as NaN, undefined inputs are NaN too (so a
/// kernel that reads a masked key or skips an output shows up).
final class VulkanLiSATests: VulkanKernelTestCase {
    var gpu: VulkanBackend!
    let cpu = CPUBackend()

    override func setUpWithError() throws {
        try super.setUpWithError()
        gpu = try VulkanBackend(device: device)
    }

    override func tearDownWithError() throws {
        gpu = nil
        try super.tearDownWithError()
    }

    // MARK: - rotatePairs

    /// q_r (6 heads, groups of 3) and k_r (2 heads) of one row block, at short and very long
    /// positions. Tolerance 2e-6 of each pair's norm: the CPU turns by an angle computed in Double;
    /// the GPU reduces position · frequency to a fraction of a turn exactly (rope_angle.glsl), leaving
    /// the float32 angle's 2⁻²⁴·π and a few ulps of cos/sin and the products (≲ 1e-6). A plain float32
    /// angle would be off by ~0.03 rad at position 10⁶.
    func testRotatePairsMatchesCPU() throws {
        let heads = 6, kvHeads = 2, pairs = 3, group = 3
        let used = (heads + kvHeads) * 2 * pairs, rowSize = used + 3
        let frequencies: [Float] = [1, 1e-4, 0.0371, 0, -0.5, 3.3]
        for (rows, start) in [(5, 0), (3, 7001), (1, 1_000_003)] {
            var x = random.floats(rows * rowSize, -2, 2)
            for r in 0..<rows { for c in used..<rowSize { x[r * rowSize + c] = .nan } }  // never touched
            func rotated<B: InferenceBackend>(_ b: B) throws -> [Float] {
                let t = try b.makeTensor(x, label: "x"), f = try b.makeTensor(frequencies, label: "frequencies")
                try b.rotatePairs(t, rows: rows, rowSize: rowSize, offset: 0, heads: heads, pairs: pairs, groupSize: group,
                                  frequencies: f, startPosition: start)
                try b.rotatePairs(t, rows: rows, rowSize: rowSize, offset: heads * 2 * pairs, heads: kvHeads, pairs: pairs, groupSize: 1,
                                  frequencies: f, startPosition: start)
                return try b.read(t, offset: 0, count: x.count)
            }
            let got = try rotated(gpu!), want = try rotated(cpu)
            var worst = 0.0
            for r in 0..<rows {
                for c in stride(from: 0, to: used, by: 2) {
                    let i = r * rowSize + c
                    let norm = max(Double(hypot(x[i], x[i + 1])), 1e-30)
                    worst = max(worst, max(abs(Double(got[i] - want[i])), abs(Double(got[i + 1] - want[i + 1]))) / norm)
                    if got[i].isNaN || got[i + 1].isNaN { worst = .infinity }
                }
                for c in used..<rowSize { XCTAssertTrue(got[r * rowSize + c].isNaN, "column \(c) outside the pairs was written") }
            }
            print("rotatePairs rows \(rows) at \(start): worst error / pair norm \(worst)")
            XCTAssertLessThan(worst, 2e-6, "rows \(rows) at position \(start)")
            // Frequency 0 (group 1, pair 0: k_r head 1 and q_r heads 3...5) leaves its pair exactly as it was.
            for r in 0..<rows {
                for c in [3 * 2 * pairs, 5 * 2 * pairs, (heads + 1) * 2 * pairs] {
                    XCTAssertEqual(got[r * rowSize + c], x[r * rowSize + c]); XCTAssertEqual(got[r * rowSize + c + 1], x[r * rowSize + c + 1])
                }
            }
        }
    }

    // MARK: - Log-probability emission by a standard layer

    /// Decode at position 37, prefill from 0, mid-context prefill, and a context over several
    /// workgroups of keys: the attention output as without emission, log P of every defined key.
    /// Tolerances: out 1e-5 of its range, as attention alone (float32, summation order only); log P
    /// 2e-5 absolute (scores of |s| ≲ 10 carry ~1e-6 rounding, so does the log-sum-exp).
    func testLogProbabilityEmissionMatchesCPU() throws {
        try checkEmission(gpu!)
    }

    /// The same with Q and K read as storage buffers (GPUs; lavapipe reads them through texels).
    func testLogProbabilityEmissionWithStorageCachesMatchesCPU() throws {
        try checkEmission(try storageBackend())
    }

    private func checkEmission(_ gpu: VulkanBackend) throws {
        let shape = AttentionShape(heads: 6, kvHeads: 2, headDim: 32)
        for (rows, start) in [(1, 37), (9, 0), (6, 23), (2, 517)] {
            let context = start + rows, stride = context + 3
            let q = random.floats(rows * shape.queryRow, -3, 3)
            let k = random.floats(context * shape.kvHeads * shape.headDim), v = random.floats(context * shape.kvHeads * shape.headDim)
            func run<B: InferenceBackend>(_ b: B) throws -> (out: [Float], logs: [Float]) {
                let row = shape.kvHeads * shape.headDim
                let cache = try b.makeCache(CacheSpec([.init(.keys, rowSize: row), .init(.values, rowSize: row)]), capacity: context + 2, label: "test")
                try b.store(try b.makeTensor(k, label: "k"), offset: 0, into: .keys, of: cache, rows: context, startPosition: 0)
                try b.store(try b.makeTensor(v, label: "v"), offset: 0, into: .values, of: cache, rows: context, startPosition: 0)
                let out = try b.makeTensor(nans(rows * shape.queryRow), label: "out")
                let logs = try b.makeTensor(nans(rows * shape.heads * stride), label: "log-probabilities")
                try b.attention(AttentionOp(scores: .queries(try b.makeTensor(q, label: "q"), keys: cache), values: cache, out: out, rows: rows,
                                            startPosition: start, shape: shape, emit: .logProbabilities(logs, stride: stride)))
                return (try b.read(out, offset: 0, count: rows * shape.queryRow), try b.read(logs, offset: 0, count: rows * shape.heads * stride))
            }
            let got = try run(gpu), want = try run(cpu)
            let label = "rows \(rows) at \(start)"
            let out = TensorDifference(name: "out", test: got.out, reference: want.out)
            let logs = try compareRows(got.logs, want.logs, rows: rows, start: start, heads: shape.heads, stride: stride, label)
            print("emission \(label): out rel \(out.maxRelative), log P abs \(logs)")
            XCTAssertLessThan(out.maxRelative, 1e-5, label)
            XCTAssertLessThan(logs, 2e-5, label)
        }
    }

    // MARK: - LiSA attention

    /// The alignment FFN (width 5 and 0), the low-rank term (rank 6 and 0), with and without
    /// emission, at decode, prefill from 0, mid-context prefill and a longer context. Logits here
    /// reach ±15, so their float32 rounding is ~2e-6; tolerances: log P 5e-5 absolute, out 1e-5 of
    /// its range (P·V in float32, summation order only).
    func testLiSAAttentionMatchesCPU() throws {
        try checkLiSAAttention(gpu!)
    }

    /// The same with V read as a storage buffer (what GPUs do; lavapipe reads it through texels).
    func testLiSAAttentionWithStorageCachesMatchesCPU() throws {
        try checkLiSAAttention(try storageBackend())
    }

    private func checkLiSAAttention(_ gpu: VulkanBackend) throws {
        let cases: [(rows: Int, start: Int, rank: Int, ffn: Int, emit: Bool)] = [
            (1, 37, 6, 5, true), (1, 37, 6, 5, false), (9, 0, 6, 5, true), (6, 23, 6, 0, true), (6, 23, 0, 5, true),
            (1, 12, 0, 0, true), (3, 517, 6, 5, true), (2, 300, 6, 5, false),
        ]
        let shape = AttentionShape(heads: 6, kvHeads: 2, headDim: 32)
        for c in cases {
            let label = "rows \(c.rows) at \(c.start), rank \(c.rank), ffn \(c.ffn), emit \(c.emit)"
            let input = LiSAInput(shape: shape, rows: c.rows, start: c.start, rank: c.rank, ffnWidth: c.ffn, random: &random)
            let got = try input.run(gpu, emit: c.emit), want = try input.run(cpu, emit: c.emit)
            let out = TensorDifference(name: "out", test: got.out, reference: want.out)
            var message = "LiSA \(label): out rel \(out.maxRelative)"
            XCTAssertLessThan(out.maxRelative, 1e-5, label)
            if c.emit {
                let logs = try compareRows(got.logs!, want.logs!, rows: c.rows, start: c.start, heads: shape.heads, stride: input.stride, label)
                message += ", log P abs \(logs)"
                XCTAssertLessThan(logs, 5e-5, label)
            }
            print(message)
        }
    }

    /// More heads than the logits kernel holds in registers: a clear error, nothing recorded.
    func testTooManyHeadsIsRejected() throws {
        let shape = AttentionShape(heads: VulkanKernels.lisaMaxHeads + 2, kvHeads: 2, headDim: 8)
        let input = LiSAInput(shape: shape, rows: 1, start: 3, rank: 2, ffnWidth: 1, random: &random)
        XCTAssertThrowsError(try input.run(gpu!, emit: true)) { error in
            XCTAssertTrue("\(error)".contains("66 heads exceed the 64"), "\(error)")
        }
    }

    // MARK: - Helpers

    /// A backend on this device that reads caches as storage buffers, as GPUs do.
    private func storageBackend() throws -> VulkanBackend {
        var tuning = gpu.kernels.tuning
        tuning.attentionTexelCaches = false
        tuning.attentionLanesDecode = false
        return try VulkanBackend(device: device, tuning: tuning)
    }

    /// Largest |got − want| over the defined entries (keys ≤ start + i) of [rows, heads, stride]
    /// tensors; the rest of `got` must still hold the NaN it started with.
    private func compareRows(_ got: [Float], _ want: [Float], rows: Int, start: Int, heads: Int, stride: Int, _ label: String) throws -> Double {
        var worst = 0.0
        for i in 0..<rows {
            for h in 0..<heads {
                let base = (i * heads + h) * stride
                for j in 0..<stride {
                    if j <= start + i {
                        let d = abs(Double(got[base + j]) - Double(want[base + j]))
                        worst = max(worst, d.isNaN ? .infinity : d)
                    } else if !got[base + j].isNaN {
                        XCTFail("\(label): row \(i) head \(h) key \(j) beyond the row's keys was written")
                        return .infinity
                    }
                }
            }
        }
        return worst
    }
}

private func nans(_ count: Int) -> [Float] { [Float](repeating: .nan, count: count) }

/// Random inputs of one LiSA attention call; `run` uploads them to a backend and reads the results.
struct LiSAInput {
    let shape: AttentionShape
    let rows: Int, start: Int, rank: Int, ffnWidth: Int
    var context: Int { start + rows }
    var stride: Int { context + 5 }
    /// Previous layer's log P [rows, heads, stride] (NaN beyond each row's keys), the alignment
    /// table, q_r [rows, heads·rank], k_r and V rows [context, kvHeads·…].
    let previous: [Float], table: [Float], queries: [Float], keys: [Float], values: [Float]

    init(shape: AttentionShape, rows: Int, start: Int, rank: Int, ffnWidth: Int, random: inout TestRandom) {
        self.shape = shape; self.rows = rows; self.start = start; self.rank = rank; self.ffnWidth = ffnWidth
        let h = shape.heads, stride = start + rows + 5
        var previous = random.floats(rows * h * stride, -9, 0)
        for i in 0..<rows { for head in 0..<h { for j in (start + i + 1)..<stride { previous[(i * h + head) * stride + j] = .nan } } }
        self.previous = previous
        table = random.floats(LiSALayerParameters.alignmentTableCount(heads: h, ffnWidth: ffnWidth), -0.8, 0.8)
        queries = random.floats(rows * h * rank, -3, 3)
        keys = random.floats((start + rows) * shape.kvHeads * rank, -3, 3)
        values = random.floats((start + rows) * shape.kvHeads * shape.headDim)
    }

    func run<B: InferenceBackend>(_ b: B, emit: Bool) throws -> (out: [Float], logs: [Float]?) {
        let keyRow = shape.kvHeads * rank, valueRow = shape.kvHeads * shape.headDim
        let spec = CacheSpec((rank > 0 ? [.init(.lowRankKeys, rowSize: keyRow)] : []) + [.init(.values, rowSize: valueRow)])
        let cache = try b.makeCache(spec, capacity: context + 1, label: "lisa test")
        if rank > 0 { try b.store(try b.makeTensor(keys, label: "k_r"), offset: 0, into: .lowRankKeys, of: cache, rows: context, startPosition: 0) }
        try b.store(try b.makeTensor(values, label: "v"), offset: 0, into: .values, of: cache, rows: context, startPosition: 0)
        let outCount = rows * shape.queryRow, logCount = rows * shape.heads * stride
        let out = try b.makeTensor(nans(outCount), label: "out"), workspace = try b.makeTensor(nans(logCount), label: "workspace")
        let scores = LiSAScores(previous: try b.makeTensor(previous, label: "previous"), stride: stride,
                                alignment: try b.makeTensor(table, label: "alignment"), ffnWidth: ffnWidth,
                                queries: try b.makeTensor(rank > 0 ? queries : [0], label: "q_r"), keys: cache, rank: rank,
                                lowRankScale: 1 / Float(shape.headDim).squareRoot(), workspace: workspace)
        try b.attention(AttentionOp(scores: .lisa(scores), values: cache, out: out, rows: rows, startPosition: start, shape: shape,
                                    emit: emit ? .logProbabilities(workspace, stride: stride) : .nothing))
        return (try b.read(out, offset: 0, count: outCount), emit ? try b.read(workspace, offset: 0, count: logCount) : nil)
    }
}
