import Foundation
import LayerShare
import VulkanCompute
import XCTest

/// Fused causal GQA attention (Shaders/attention*.comp) against a naive float64 CPU attention.
///
/// Error metric: max |O_gpu − O_ref| / max |V| over every output element. Each output is a convex
/// combination of V rows (softmax weights sum to 1), so the error is bounded by max|V| times the
/// relative error of the weights: float32 rounding of the length-d dot products (~√d·ε·|s|), of
/// exp (a few ulp) and of the running sums over T keys (~ε·log T with the tiled accumulation,
/// ε·T in the worst case). With |s| ≲ 3 and T ≤ 2049 that is ~1e-6; the bound used is 1e-5.
/// Probabilities (each ≤ 1) are checked with an absolute 1e-5 as well. "Peaky" inputs (Q scaled
/// so scores span ±50) amplify the score rounding (δp/p ≈ δs ≈ √d·ε·|s|) and use 5e-5.
final class VulkanAttentionTests: AttentionTestCase {
    static let tolerance = 1e-5
    static let peakyTolerance = 5e-5

    struct Case: CustomStringConvertible {
        var heads: Int, kvHeads: Int, headDim: Int, rows: Int, start: Int
        var qScale: Float = 1
        var emit = false
        var description: String {
            "heads \(heads)/kv \(kvHeads) d\(headDim) n=\(rows) start=\(start)\(qScale != 1 ? " qScale \(qScale)" : "")\(emit ? " +P" : "")"
        }
    }

    struct Outcome {
        var error: Double           // max abs output error / max |V|
        var probabilityError = 0.0  // max abs probability error
        var gpuProbabilities: [Float] = []
        var referenceProbabilities: [Double] = []
        var k: [Float] = []
    }

    /// Runs one case on the GPU with NaN-poisoned outputs, scratch and unused cache rows, and
    /// compares with `referenceAttention`.
    @discardableResult
    func check(_ c: Case, _ rng: inout TestRandom, tolerance: Double = VulkanAttentionTests.tolerance) throws -> Outcome {
        let total = c.start + c.rows
        let capacity = total + 5
        let d = c.headDim
        let q = rng.floats(c.rows * c.heads * d).map { $0 * c.qScale }
        let kValid = rng.floats(total * c.kvHeads * d)
        let vValid = rng.floats(total * c.kvHeads * d, -2, 2)
        // Cache rows past start+n hold NaN: reading them at all would poison the result.
        let nanRows = [Float](repeating: .nan, count: (capacity - total) * c.kvHeads * d)
        let qBuffer = try buffer(q, label: "q")
        let kBuffer = try buffer(kValid + nanRows, label: "k cache")
        let vBuffer = try buffer(vValid + nanRows, label: "v cache")
        let out = try poisoned(c.rows * c.heads * d, label: "out")
        let scratch = try poisoned(VulkanAttention.scratchBytes(heads: c.heads, headDim: d, maxContext: total) / 4, label: "scratch")
        let probs = c.emit ? try poisoned(c.heads * total, label: "probabilities") : nil
        let scale = 1 / Float(d).squareRoot()

        let batch = try CommandBatch(device: device)
        try batch.begin()
        try attention.attention(batch, q: qBuffer, k: kBuffer, v: vBuffer, out: out, scratch: scratch,
                                rows: c.rows, startPosition: c.start, heads: c.heads, kvHeads: c.kvHeads,
                                headDim: d, scale: scale, probabilities: probs, label: "attention")
        try batch.run()

        let gpu = try out.download(Float.self, count: c.rows * c.heads * d)
        let ref = referenceAttention(q: q, k: kValid, v: vValid, rows: c.rows, start: c.start, heads: c.heads,
                                     kvHeads: c.kvHeads, headDim: d, scale: Double(scale))
        var outcome = Outcome(error: maxAbsError(gpu, ref.out) / maxMagnitude(vValid))
        let plan = try attention.plan(rows: c.rows, startPosition: c.start, heads: c.heads, kvHeads: c.kvHeads,
                                      headDim: d, emitsProbabilities: c.emit)
        var line = "\(c): error \(String(format: "%.2e", outcome.error)) [\(plan)]"
        if let probs {
            outcome.gpuProbabilities = try probs.download(Float.self, count: c.heads * total)
            outcome.referenceProbabilities = ref.probabilities
            outcome.probabilityError = maxAbsError(outcome.gpuProbabilities, ref.probabilities)
            line += String(format: ", P error %.2e", outcome.probabilityError)
            XCTAssertLessThanOrEqual(outcome.probabilityError, tolerance, "\(c): probabilities")
        }
        print(line)
        XCTAssertLessThanOrEqual(outcome.error, tolerance, "\(c): output (seed \(rng.seed))")
        outcome.k = kValid
        return outcome
    }

    func testPrefillMatchesReference() throws {
        var rng = TestRandom(#function)
        for (heads, kvHeads) in [(9, 3), (4, 4)] {
            for n in [1, 7, 33, 100] {
                for start in [0, 37] {
                    try check(Case(heads: heads, kvHeads: kvHeads, headDim: 64, rows: n, start: start), &rng)
                }
            }
        }
    }

    func testOtherHeadDims() throws {
        var rng = TestRandom(#function)
        for (heads, kvHeads) in [(6, 2), (4, 4)] {
            for (n, start) in [(7, 0), (100, 37), (1, 600)] {
                try check(Case(heads: heads, kvHeads: kvHeads, headDim: 128, rows: n, start: start), &rng)
            }
        }
        // 32: several invocations per output row; 80: not a power of two.
        try check(Case(heads: 9, kvHeads: 3, headDim: 32, rows: 33, start: 37), &rng)
        try check(Case(heads: 8, kvHeads: 2, headDim: 80, rows: 33, start: 37), &rng)
    }

    func testDecodeSplitsMatchReference() throws {
        var rng = TestRandom(#function)
        let expectedSplits = [1: 1, 511: 2, 513: 3, 1500: 6, 2049: 9]
        for t in [1, 511, 513, 1500, 2049] {
            let plan = try attention.plan(rows: 1, startPosition: t - 1, heads: 9, kvHeads: 3, headDim: 64)
            XCTAssertEqual(plan.splits, expectedSplits[t], "splits for T = \(t)")
            XCTAssertEqual(plan.merges, t > VulkanAttention.minSplitLength)
            try check(Case(heads: 9, kvHeads: 3, headDim: 64, rows: 1, start: t - 1), &rng)
        }
        for t in [513, 2049] {
            try check(Case(heads: 4, kvHeads: 4, headDim: 128, rows: 1, start: t - 1), &rng)
        }
    }

    /// Runs `body` for each decode attention form, whichever the device defaults to: lanes owning keys
    /// (texel caches with subgroup ballot, CPU drivers), and lanes owning head dimensions through
    /// texel views and through storage buffers.
    func forEachDecodeForm(_ body: (_ lanes: Bool, _ texel: Bool) throws -> Void) throws {
        let ballot = device.info.supportsSubgroupBallot
        for (lanes, texel) in [(true, true), (false, true), (false, false)] where ballot || !lanes {
            attention.lanesDecode = lanes
            attention.texelCaches = texel
            try body(lanes, texel)
        }
    }

    /// Both decode kernels, whichever the device defaults to: attention_decode_lanes.comp (texel
    /// caches with subgroup ballot, CPU drivers) and attention_decode.comp, through texel views and
    /// storage buffers; head dims whose texel count does not fill the subgroup evenly (80: 20 texels).
    func testBothDecodeKernels() throws {
        var rng = TestRandom(#function)
        try forEachDecodeForm { lanes, _ in
            let plan = try attention.plan(rows: 1, startPosition: 40, heads: 9, kvHeads: 3, headDim: 64)
            XCTAssertEqual(plan.kernel, lanes ? "attention_decode_lanes.comp" : "attention_decode.comp")
            for (heads, kvHeads, d, t) in [(9, 3, 64, 41), (8, 2, 80, 300), (4, 4, 128, 7), (6, 3, 16, 9)] {
                try check(Case(heads: heads, kvHeads: kvHeads, headDim: d, rows: 1, start: t - 1, emit: t == 300), &rng)
            }
        }
    }

    func testSplitLayoutAndScratchSize() throws {
        XCTAssertEqual(VulkanAttention.splitLayout(context: 256).count, 1)
        XCTAssertEqual(VulkanAttention.splitLayout(context: 257).count, 2)
        var previousBound = 0
        for t in stride(from: 1, through: 200_000, by: 97) {
            let (length, count) = VulkanAttention.splitLayout(context: t)
            XCTAssertLessThanOrEqual(count, VulkanAttention.maxSplits)
            XCTAssertGreaterThanOrEqual(length * count, t)
            XCTAssertLessThan(length * (count - 1), t, "no empty split at T = \(t)")
            // scratchBytes(maxContext: T) covers every context up to T.
            let bound = VulkanAttention.scratchBytes(heads: 9, headDim: 64, maxContext: t)
            XCTAssertGreaterThanOrEqual(bound, count * 9 * 66 * 4)
            XCTAssertGreaterThanOrEqual(bound, previousBound)
            previousBound = bound
        }
    }

    func testPeakyScoresAndLongPrefill() throws {
        var rng = TestRandom(#function)
        // Scores spanning about ±50: the running max moves a lot between tiles and splits.
        try check(Case(heads: 9, kvHeads: 3, headDim: 64, rows: 100, start: 400, qScale: 60), &rng,
                  tolerance: Self.peakyTolerance)
        try check(Case(heads: 9, kvHeads: 3, headDim: 64, rows: 1, start: 1499, qScale: 60), &rng,
                  tolerance: Self.peakyTolerance)
        // Many row blocks and several hundred keys per block.
        try check(Case(heads: 4, kvHeads: 4, headDim: 64, rows: 300, start: 250), &rng)
    }

    /// Every apply form: lanes owning keys (CPU drivers), lanes owning dimensions through texel views
    /// and through storage buffers, whichever the device defaults to.
    func testEmittedProbabilitiesAndApply() throws {
        var rng = TestRandom(#function)
        try forEachDecodeForm { lanes, texel in
            for (heads, kvHeads, d, t) in [(9, 3, 64, 1), (9, 3, 64, 300), (9, 3, 64, 1500), (4, 4, 128, 513)] {
                let c = Case(heads: heads, kvHeads: kvHeads, headDim: d, rows: 1, start: t - 1, emit: true)
                let outcome = try check(c, &rng)
                // Rows of P sum to 1.
                for h in 0..<heads {
                    let sum = outcome.gpuProbabilities[h * t ..< (h + 1) * t].reduce(0.0) { $0 + Double($1) }
                    XCTAssertEqual(sum, 1, accuracy: 1e-5, "\(c): row \(h) of P")
                }
                // Apply the emitted P to another layer's V cache (NaN past T, as in a real cache).
                let vOther = rng.floats(t * kvHeads * d, -3, 3)
                let pBuffer = try buffer(outcome.gpuProbabilities, label: "P")
                let vBuffer = try buffer(vOther + [Float](repeating: .nan, count: 2 * kvHeads * d), label: "v other")
                let out = try poisoned(heads * d, label: "applied")
                let batch = try CommandBatch(device: device)
                try batch.begin()
                try attention.applyProbabilities(batch, probabilities: pBuffer, v: vBuffer, out: out, context: t,
                                                 heads: heads, kvHeads: kvHeads, headDim: d, label: "apply")
                try batch.run()
                let gpu = try out.download(Float.self, count: heads * d)
                let scaleV = maxMagnitude(vOther)
                // Against the GPU's own P (the apply kernel alone) and the exact P (end to end).
                let own = maxAbsError(gpu, referenceApply(outcome.gpuProbabilities, v: vOther, context: t, heads: heads, kvHeads: kvHeads, headDim: d)) / scaleV
                let exact = maxAbsError(gpu, referenceApply(outcome.referenceProbabilities, v: vOther, context: t, heads: heads, kvHeads: kvHeads, headDim: d)) / scaleV
                print("  apply T=\(t): error vs own P \(String(format: "%.2e", own)), vs exact P \(String(format: "%.2e", exact))")
                XCTAssertLessThanOrEqual(own, Self.tolerance, "\(c) lanes \(lanes) texel \(texel): apply vs GPU P")
                XCTAssertLessThanOrEqual(exact, Self.tolerance, "\(c) lanes \(lanes) texel \(texel): apply vs exact P")
            }
        }
    }

    /// Attention emitting P and apply of that P to another V, recorded back to back in one batch:
    /// the batch's hazard tracking must order them.
    func testEmitThenApplyInOneBatch() throws {
        var rng = TestRandom(#function)
        let (heads, kvHeads, d, t) = (9, 3, 64, 700)
        let q = rng.floats(heads * d)
        let k = rng.floats(t * kvHeads * d)
        let v = rng.floats(t * kvHeads * d)
        let v2 = rng.floats(t * kvHeads * d)
        let scratch = try poisoned(VulkanAttention.scratchBytes(heads: heads, headDim: d, maxContext: 4096) / 4, label: "scratch")
        let probs = try poisoned(heads * t, label: "P")
        let out1 = try poisoned(heads * d, label: "out1")
        let out2 = try poisoned(heads * d, label: "out2")
        let (qb, kb, vb, v2b) = (try buffer(q, label: "q"), try buffer(k, label: "k"), try buffer(v, label: "v"), try buffer(v2, label: "v2"))
        let batch = try CommandBatch(device: device, maxTimestamps: 8)
        try batch.begin()
        try attention.attention(batch, q: qb, k: kb, v: vb, out: out1, scratch: scratch, rows: 1, startPosition: t - 1,
                                heads: heads, kvHeads: kvHeads, headDim: d, scale: 0.125, probabilities: probs,
                                label: "attn", group: "layer0")
        try attention.applyProbabilities(batch, probabilities: probs, v: v2b, out: out2, context: t, heads: heads,
                                         kvHeads: kvHeads, headDim: d, label: "apply", group: "layer1")
        XCTAssertEqual(batch.dispatchCount, 3)
        XCTAssertEqual(batch.barrierCount, 2, "merge waits for the splits, apply waits for the merge")
        try batch.run()
        if device.info.timestampsSupported {
            XCTAssertEqual(batch.timings.map(\.label), ["attn", "attn.merge", "apply"])
        }
        let ref = referenceAttention(q: q, k: k, v: v, rows: 1, start: t - 1, heads: heads, kvHeads: kvHeads, headDim: d, scale: 0.125)
        XCTAssertLessThanOrEqual(maxAbsError(try out1.download(Float.self, count: heads * d), ref.out) / maxMagnitude(v), Self.tolerance)
        let applied = referenceApply(ref.probabilities, v: v2, context: t, heads: heads, kvHeads: kvHeads, headDim: d)
        XCTAssertLessThanOrEqual(maxAbsError(try out2.download(Float.self, count: heads * d), applied) / maxMagnitude(v2), Self.tolerance)
    }

    /// The kernels assume full subgroups of `subgroupSize` lanes with subgroup arithmetic: the device
    /// info reports what is guaranteed, and pipelines request it where the device allows.
    func testSubgroupRequirements() throws {
        let info = device.info
        print("subgroup ops: \(info.subgroupOperationNames), size \(info.subgroupSize) (\(info.minSubgroupSize)...\(info.maxSubgroupSize)), "
              + "size control \(info.hasSubgroupSizeControl), full subgroups \(info.supportsComputeFullSubgroups)")
        XCTAssertTrue(info.supportsSubgroupArithmetic)
        XCTAssertTrue(info.subgroupOperationNames.contains("arithmetic"))
        XCTAssertLessThanOrEqual(info.minSubgroupSize, info.subgroupSize)
        XCTAssertGreaterThanOrEqual(info.maxSubgroupSize, info.subgroupSize)
        let requirement = SubgroupRequirement.fullDeviceSubgroups(info)
        XCTAssertEqual(requirement.fullSubgroups, info.supportsComputeFullSubgroups)
        XCTAssertEqual(requirement.requiredSize, info.supportsRequiredSubgroupSize ? info.subgroupSize : nil)
        // A size the device cannot run is a clear error, not a driver failure.
        XCTAssertThrowsError(try library.pipeline("attention_apply.comp", defines: [
            "HEAD_DIM": "64", "GROUP": "1", "SUBGROUP": "\(info.subgroupSize)", "NSUB": "1", "WG_SIZE": "\(info.subgroupSize)",
        ], bindings: 3, pushConstantBytes: 8, subgroups: SubgroupRequirement(requiredSize: info.maxSubgroupSize * 2))) { error in
            XCTAssertTrue("\(error)".contains("subgroup size"), "\(error)")
        }
    }

    func testBadArgumentsAreClearErrors() throws {
        let (heads, kvHeads, d) = (9, 3, 64)
        let q = try poisoned(4 * heads * d, label: "q")
        let k = try poisoned(600 * kvHeads * d, label: "k")
        let v = try poisoned(600 * kvHeads * d, label: "v")
        let out = try poisoned(4 * heads * d, label: "out")
        let small = try poisoned(16, label: "small scratch")
        let scratch = try poisoned(VulkanAttention.scratchBytes(heads: heads, headDim: d, maxContext: 600) / 4, label: "scratch")
        let probs = try poisoned(heads * 600, label: "P")
        let longProbs = try poisoned(heads * 700, label: "long P")
        let batch = try CommandBatch(device: device)
        try batch.begin()

        func expect(_ fragment: String, _ call: () throws -> Void, line: UInt = #line) {
            XCTAssertThrowsError(try call(), line: line) { error in
                XCTAssertTrue("\(error)".contains(fragment), "error should mention '\(fragment)': \(error)", line: line)
            }
        }
        func attend(q: DeviceBuffer = q, k: DeviceBuffer = k, out: DeviceBuffer = out, scratch: DeviceBuffer = scratch,
                    n: Int = 4, start: Int = 10, heads: Int = heads, kvHeads: Int = kvHeads, d: Int = d,
                    scale: Float = 0.125, probabilities: DeviceBuffer? = nil) throws {
            try attention.attention(batch, q: q, k: k, v: v, out: out, scratch: scratch, rows: n, startPosition: start,
                                    heads: heads, kvHeads: kvHeads, headDim: d, scale: scale,
                                    probabilities: probabilities, label: "layer3.attention")
        }
        expect("multiple of kvHeads") { try attend(heads: 9, kvHeads: 2) }
        expect("head dim 72 is not supported") { try attend(d: 72) }
        expect("head dim 512 is not supported") { try attend(d: 512) }
        expect("rows n must be ≥ 1") { try attend(n: 0) }
        expect("startPosition must be ≥ 0") { try attend(start: -1) }
        expect("Q buffer 'q'") { try attend(n: 5) }
        expect("K cache buffer 'k'") { try attend(start: 597) }
        expect("layer3.attention") { try attend(start: 597) }
        expect("scale must be finite") { try attend(scale: .nan) }
        expect("must not be the same buffer") { try attend(out: q) }
        expect("only be emitted for decode") { try attend(probabilities: probs) }
        expect("scratch buffer 'small scratch'") { try attend(scratch: small, n: 1, start: 599) }
        expect("scratchBytes") { try attend(scratch: small, n: 1, start: 599) }
        expect("scratch buffer 'small scratch'") { try attend(scratch: small, n: 1, start: 5, probabilities: probs) }
        expect("probabilities buffer 'small scratch'") { try attend(n: 1, start: 599, probabilities: small) }
        // A short context decodes in one workgroup without touching the scratch buffer.
        XCTAssertNoThrow(try attend(scratch: small, n: 1, start: 100))
        expect("context T must be ≥ 1") {
            try attention.applyProbabilities(batch, probabilities: probs, v: v, out: out, context: 0, heads: heads,
                                             kvHeads: kvHeads, headDim: d, label: "apply")
        }
        expect("V cache buffer 'v'") {
            try attention.applyProbabilities(batch, probabilities: longProbs, v: v, out: out, context: 601, heads: heads,
                                             kvHeads: kvHeads, headDim: d, label: "apply")
        }
        expect("probabilities buffer 'small scratch'") {
            try attention.applyProbabilities(batch, probabilities: small, v: v, out: out, context: 100, heads: heads,
                                             kvHeads: kvHeads, headDim: d, label: "apply")
        }
        try batch.run()
    }

    /// Timings on the current device; run with LAYERSHARE_ATTENTION_BENCH=1 (release build). Prints the
    /// best of 6 GPU-timestamp intervals and the process CPU time (on lavapipe the "GPU" is this
    /// process's worker threads, so CPU time is the contention-robust measure of work).
    func testBenchmark() throws {
        guard ProcessInfo.processInfo.environment["LAYERSHARE_ATTENTION_BENCH"] == "1" else {
            throw XCTSkip("set LAYERSHARE_ATTENTION_BENCH=1 to time the attention kernels")
        }
        var rng = TestRandom(#function)
        print("device: \(device.info.name), subgroup \(device.info.subgroupSize), shared \(device.info.maxSharedMemory)")
        func cpuMs() -> Double {
            var ts = timespec()
            clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
            return Double(ts.tv_sec) * 1e3 + Double(ts.tv_nsec) / 1e6
        }
        func time(_ record: (CommandBatch) throws -> Void) throws -> (gpu: Double, cpu: Double) {
            let batch = try CommandBatch(device: device, maxTimestamps: 4)
            var best = (gpu: Double.infinity, cpu: Double.infinity)
            for _ in 0..<6 {
                let c0 = cpuMs()
                try batch.begin()
                try record(batch)
                try batch.run()
                best.cpu = min(best.cpu, cpuMs() - c0)
                best.gpu = min(best.gpu, batch.timings.reduce(0) { $0 + $1.durationNs } / 1e6)
            }
            return best
        }
        let cases: [(heads: Int, kvHeads: Int, d: Int, n: Int, start: Int)] = [
            (9, 3, 64, 1, 255), (9, 3, 64, 1, 1023), (9, 3, 64, 1, 4095),
            (9, 3, 64, 128, 0), (9, 3, 64, 512, 0), (32, 8, 128, 1, 1023), (32, 8, 128, 128, 0),
        ]
        for c in cases {
            let total = c.start + c.n
            let q = try buffer(rng.floats(c.n * c.heads * c.d), label: "q")
            let k = try buffer(rng.floats(total * c.kvHeads * c.d), label: "k")
            let v = try buffer(rng.floats(total * c.kvHeads * c.d), label: "v")
            let out = try poisoned(c.n * c.heads * c.d, label: "out")
            let scratch = try poisoned(VulkanAttention.scratchBytes(heads: c.heads, headDim: c.d, maxContext: total) / 4, label: "scratch")
            let probs = c.n == 1 ? try poisoned(c.heads * total, label: "P") : nil
            for emit in c.n == 1 ? [false, true] : [false] {
                let t = try time { batch in
                    try attention.attention(batch, q: q, k: k, v: v, out: out, scratch: scratch, rows: c.n, startPosition: c.start,
                                            heads: c.heads, kvHeads: c.kvHeads, headDim: c.d, scale: 0.1,
                                            probabilities: emit ? probs : nil, label: "attn")
                }
                let plan = try attention.plan(rows: c.n, startPosition: c.start, heads: c.heads, kvHeads: c.kvHeads, headDim: c.d)
                print(String(format: "heads %d/%d d%d n=%d T=%d%@: GPU %.3f ms, CPU %.3f ms  [%@]", c.heads, c.kvHeads, c.d, c.n, total,
                             emit ? " +P" : "", t.gpu, t.cpu, plan.description))
            }
        }
        let t = 1024
        let p = try buffer(rng.floats(9 * t, 0, 1.0 / Float(t)), label: "P")
        let v = try buffer(rng.floats(t * 3 * 64), label: "v")
        let out = try poisoned(9 * 64, label: "out")
        let applied = try time { batch in
            try attention.applyProbabilities(batch, probabilities: p, v: v, out: out, context: t, heads: 9, kvHeads: 3, headDim: 64, label: "apply")
        }
        print(String(format: "apply heads 9/3 d64 T=%d: GPU %.3f ms, CPU %.3f ms", t, applied.gpu, applied.cpu))
    }
}
