import Foundation
@testable import LayerShare
import XCTest

/// `layershare profile` on the real model (issue 5): every command of a step is timed, the tables
/// add up to the step's GPU time, and the trace is valid trace-event JSON.
final class ProfileRunTests: XCTestCase {
    static let decodeSteps = 3

    /// One profiled short run shared by the tests (uploading weights and building pipelines
    /// dominates the cost); the device is kept for the validation-layer check.
    static let shared: Result<(run: ProfileRun, device: VulkanDevice), Error> = Result {
        try profile(timestamps: true)
    }

    static func profile(timestamps: Bool) throws -> (run: ProfileRun, device: VulkanDevice) {
        let model = try SharedModel.model()
        let prompt = model.tokenizer.encode("The capital of France is")
        var options = RunnerOptions()
        options.context = prompt.count + decodeSteps + 1
        options.profiling = timestamps
        let device = try VulkanDevice()
        let session = try RunnerFactory.makeVulkan(model: model, options: options, device: device)
        let run = try ProfileRun.run(runner: session.runner, backend: session.backend, prompt: prompt, steps: decodeSteps)
        return (run, device)
    }

    private func sharedRun() throws -> ProfileRun {
        let (run, device) = try Self.shared.get()
        if let messages = device.instance.validationLog?.messages, !messages.isEmpty {
            XCTFail("validation layer reported \(messages.count) message(s):\n" + messages.joined(separator: "\n"))
        }
        try XCTSkipUnless(run.timestampsAvailable, "\(run.deviceName) has no timestamp queries (lavapipe has them)")
        return run
    }

    func testEveryCommandOfADecodeStepIsTimed() throws {
        let run = try sharedRun()
        let layers = run.layers
        XCTAssertEqual(run.decode.count, Self.decodeSteps)
        // A short prompt is one chunk, so the prefill is one batch too.
        XCTAssertEqual(run.prefill.batches.count, 1)
        XCTAssertEqual(run.prefill.timings.count, run.prefill.lastBatchCommands, "prefill: timed commands vs recorded")
        var perStep: Int?
        for (i, step) in run.decode.enumerated() {
            XCTAssertEqual(step.batches.count, 1, "decode step \(i) should be one submission")
            let timings = step.timings
            XCTAssertEqual(timings.count, step.lastBatchCommands, "decode step \(i): timed commands vs dispatches + copies recorded")
            if let perStep { XCTAssertEqual(timings.count, perStep, "decode step \(i) has a different structure") }
            perStep = timings.count

            // Structure: embedding, the same ops in every layer, then the output norm + LM head.
            let byGroup = Dictionary(grouping: timings, by: \.group)
            XCTAssertEqual(byGroup["embedding"]?.map(\.label), ["token_ids", "embedding Q8_0"], "step \(i): token ids, then the embedding")
            // Labels carry the kernel variant and shape, e.g. "matvec Q4_1 576→960 (attn_qkv)".
            let output = byGroup["output"]?.map(\.label) ?? []
            XCTAssertTrue((1...2).contains(output.count), "step \(i): output group \(output)")
            XCTAssertTrue(output.contains { $0.contains("norm") } && output.contains { $0.contains("lm_head") }, "step \(i): \(output)")
            let layer0 = byGroup["layer 0"]?.map(\.label) ?? []
            // Every op of a layer is timed: on devices with the fused lanes kernel the norms, RoPE + KV
            // store, residual adds and SwiGLU ride in the products' labels ("attn_qkv + norm + rope_kv"),
            // elsewhere they are commands of their own.
            for name in ["norm", "attn_qkv", "rope_kv", "attention", "attn_output", "ffn_gate_up", "swiglu", "ffn_down"] {
                XCTAssertTrue(layer0.contains { $0.contains(name) }, "step \(i): layer 0 has no '\(name)' (has \(layer0))")
            }
            XCTAssertEqual(layer0.filter { $0.contains("add") || $0.contains("residual") }.count, 2, "step \(i): two residual adds in \(layer0)")
            for l in 1..<max(layers, 1) {
                let labels = byGroup["layer \(l)"]?.map(\.label) ?? []
                XCTAssertEqual(labels, layer0, "step \(i): layer \(l) differs from layer 0")
            }
            XCTAssertEqual(Set(byGroup.keys), Set(["embedding", "output"] + (0..<layers).map { "layer \($0)" }))
            XCTAssertEqual(timings.count, 2 + layers * layer0.count + output.count)  // token ids + embedding, layers, output
        }
        XCTAssertEqual(run.decodeProfile.dispatches, Self.decodeSteps * (perStep ?? 0))
    }

    func testKernelTotalsAddUpToTheStepGPUTime() throws {
        let run = try sharedRun()
        for (i, step) in ([run.prefill] + run.decode).enumerated() {
            let timings = step.timings
            XCTAssertFalse(timings.isEmpty)
            // Intervals tile the batch: each starts where the previous ended.
            var cursor = 0.0
            for t in timings {
                XCTAssertTrue(t.durationNs.isFinite && t.durationNs >= 0, "\(t.label): duration \(t.durationNs)")
                XCTAssertEqual(t.startNs, cursor, accuracy: 1e-6 * max(cursor, 1), "\(t.label) in step \(i)")
                cursor = t.startNs + t.durationNs
            }
            let total = step.gpuNs
            XCTAssertGreaterThan(total, 0)
            XCTAssertEqual(timings.last!.startNs + timings.last!.durationNs, total, accuracy: 1e-9 * total)

            var profile = KernelProfile()
            profile.add(step.batches)
            XCTAssertEqual(profile.gpuNs, total, accuracy: 1e-9 * total)
            XCTAssertEqual(profile.kernelRows.reduce(0) { $0 + $1.totalNs }, total, accuracy: 1e-9 * total, "kernel rows, step \(i)")
            XCTAssertEqual(profile.groupRows.reduce(0) { $0 + $1.totalNs }, total, accuracy: 1e-9 * total, "layer rows, step \(i)")
            XCTAssertEqual(profile.kernelRows.reduce(0) { $0 + $1.calls }, timings.count)
            XCTAssertEqual(profile.groupRows.reduce(0) { $0 + $1.calls }, timings.count)
            // The GPU work happens inside the host's wait for it: a timestamp period or valid-bits
            // mistake shows up as GPU time exceeding wall time.
            XCTAssertLessThanOrEqual(total, step.wallNs * 1.02 + 50_000, "step \(i): GPU \(total) ns vs wall \(step.wallNs) ns")
        }
        // The whole decode phase is the sum of its steps.
        let stepSum = run.decode.reduce(0) { $0 + $1.gpuNs }
        XCTAssertEqual(run.decodeProfile.gpuNs, stepSum, accuracy: 1e-9 * stepSum)
        XCTAssertEqual(run.decodeProfile.kernelRows.reduce(0) { $0 + $1.totalNs }, stepSum, accuracy: 1e-9 * stepSum)
        // Cost figures are attached to the matmuls, so bandwidth is reported for them.
        let lmHead = try XCTUnwrap(run.decodeProfile.kernelRows.first { $0.name.contains("lm_head") })
        XCTAssertGreaterThan(lmHead.bytes, 0)
        XCTAssertTrue(lmHead.gigabytesPerSecond.isFinite && lmHead.gigabytesPerSecond > 0)
    }

    func testTraceIsValidJSONWithOneEventPerTimedCommand() throws {
        let run = try sharedRun()
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("profile-trace-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: url) }
        try run.writeTrace(to: url)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: url))
        let root = try XCTUnwrap(json as? [String: Any])
        let events = try XCTUnwrap(root["traceEvents"] as? [[String: Any]])
        let complete = events.filter { $0["ph"] as? String == "X" }
        let all = run.prefill.timings + run.decode.flatMap(\.timings)
        XCTAssertEqual(complete.count, all.count, "one complete event per timed command")
        XCTAssertEqual(complete.compactMap { $0["name"] as? String }, all.map(\.label))
        var lastEnd: [Int: Double] = [:]
        for e in complete {
            let name = try XCTUnwrap(e["name"] as? String)
            XCTAssertFalse(name.isEmpty)
            let ts = try XCTUnwrap((e["ts"] as? NSNumber)?.doubleValue, "\(name): ts")
            let dur = try XCTUnwrap((e["dur"] as? NSNumber)?.doubleValue, "\(name): dur")
            XCTAssertTrue(ts.isFinite && ts >= 0 && dur.isFinite && dur >= 0, "\(name): ts \(ts) dur \(dur)")
            XCTAssertNotNil(e["pid"] as? Int, "\(name): pid")
            let tid = try XCTUnwrap(e["tid"] as? Int, "\(name): tid")
            let args = try XCTUnwrap(e["args"] as? [String: Any], "\(name): args")
            let layer = try XCTUnwrap(args["layer"] as? String, "\(name): args.layer")
            XCTAssertTrue(layer == "embedding" || layer == "output" || layer.hasPrefix("layer "), "\(name): layer '\(layer)'")
            // Events of one thread follow each other (tolerance for the µs rounding of doubles).
            XCTAssertGreaterThanOrEqual(ts, (lastEnd[tid] ?? 0) - 1e-3, "\(name) overlaps the previous event")
            lastEnd[tid] = ts + dur
        }
        let threads = events.filter { $0["ph"] as? String == "M" }.compactMap { ($0["args"] as? [String: Any])?["name"] as? String }
        XCTAssertEqual(threads, ["prefill", "decode"])
    }

    func testReportHasKernelAndLayerTablesAndHostOverhead() throws {
        let run = try sharedRun()
        let report = run.report()
        for needle in ["== prefill", "== decode (per step, \(Self.decodeSteps) steps)", "== decode per layer", "host overhead",
                       "embedding", "layer 0", "layer \(run.layers - 1)", "output"] {
            XCTAssertTrue(report.contains(needle), "report lacks '\(needle)':\n\(report)")
        }
        for row in run.decodeProfile.kernelRows {
            XCTAssertTrue(report.contains(row.name), "report lacks kernel '\(row.name)'")
        }
        XCTAssertNil(run.fallbackNote)
    }

    /// Without timestamp queries (here: a backend built without profiling, which takes the same
    /// path as a device that lacks them) the run still reports host wall times and says why.
    func testWithoutTimestampsFallsBackToHostTimings() throws {
        let (run, device) = try Self.profile(timestamps: false)
        XCTAssertFalse(run.timestampsAvailable)
        XCTAssertTrue(run.prefill.timings.isEmpty && run.decode.allSatisfy { $0.timings.isEmpty })
        XCTAssertGreaterThan(run.prefill.wallNs, 0)
        XCTAssertTrue(run.decode.allSatisfy { $0.wallNs > 0 })
        let note = try XCTUnwrap(run.fallbackNote)
        XCTAssertTrue(note.contains("only host-side timings"), note)
        let report = run.report()
        XCTAssertTrue(report.contains(note) && report.contains("host wall time") && report.contains("tok/s"), report)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: run.traceData()) as? [String: Any])
        XCTAssertEqual((json["traceEvents"] as? [[String: Any]])?.filter { $0["ph"] as? String == "X" }.count, 0)
        if let messages = device.instance.validationLog?.messages, !messages.isEmpty {
            XCTFail("validation layer reported \(messages.count) message(s):\n" + messages.joined(separator: "\n"))
        }
    }
}
