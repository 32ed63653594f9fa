import Foundation
import VulkanCompute

/// A profiled prefill and N greedy decode steps on a Vulkan runner: wall time and GPU timings of
/// every step, aggregated into kernel profiles. `layershare profile` prints `report()`; tests check
/// the raw steps (coverage, sums) directly.
public struct ProfileRun {
    /// One forward call (the whole prefill, or one decode step).
    public struct Step {
        /// Host wall time of the forward call (and, for decode, picking the next token).
        public let wallNs: Double
        /// GPU timings, one array per submitted batch.
        public let batches: [[DispatchTiming]]
        /// Commands (dispatches + copies) recorded in the step's last batch, read from the
        /// CommandBatch itself so a test can check that every one of them was timed.
        public let lastBatchCommands: Int

        public var timings: [DispatchTiming] { Array(batches.joined()) }
        public var gpuNs: Double { batches.joined().reduce(0) { $0 + $1.durationNs } }
    }

    public let deviceName: String
    /// False when the device has no timestamp queries (or the backend was built without
    /// profiling): then only host-side wall times are available.
    public let timestampsAvailable: Bool
    public let layers: Int
    public let promptTokens: Int
    public let prefill: Step
    public let decode: [Step]
    public let prefillProfile: KernelProfile
    public let decodeProfile: KernelProfile

    public var decodeWallNs: Double { decode.reduce(0) { $0 + $1.wallNs } }
    public var decodeBatches: [[DispatchTiming]] { decode.flatMap(\.batches) }

    /// Said (on stderr by the CLI, and in the report) when only host timings exist.
    public var fallbackNote: String? {
        timestampsAvailable ? nil : "note: \(deviceName) has no timestamp queries (or profiling is off); only host-side timings are shown"
    }

    /// Runs `prompt` then `steps` greedy decode steps from an empty cache. The backend should have
    /// been built with profiling on (`RunnerOptions.profiling`). A warm-up prefill + decode step
    /// first keeps pipeline creation (JIT on lavapipe) out of the measurement.
    public static func run(runner: ModelRunner, backend: VulkanBackend, prompt: [Int], steps: Int,
                           warmUp: Bool = true) throws -> ProfileRun {
        guard !prompt.isEmpty else { throw ModelLoadError("profile needs at least one prompt token") }
        guard steps >= 0 else { throw ModelLoadError("profile needs a non-negative number of decode steps") }
        guard prompt.count + steps <= runner.capacity else {
            throw ModelLoadError("prompt \(prompt.count) + \(steps) steps exceeds the runner's capacity \(runner.capacity)")
        }
        if warmUp {
            runner.reset()
            let logits = try runner.forward(Array(prompt.prefix(2)), logits: .last)
            if runner.capacity > min(2, prompt.count) {
                try runner.forward([logits.withUnsafeBufferPointer { Sampler.argmax($0) }], logits: .last)
            }
        }
        runner.reset()
        _ = backend.takeTimings()

        func timed(_ body: () throws -> Void) rethrows -> Step {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try body()
            let wall = Double(DispatchTime.now().uptimeNanoseconds - t0)
            let recorded = backend.batch.dispatchCount + backend.batch.copyCount
            return Step(wallNs: wall, batches: backend.takeTimings(), lastBatchCommands: recorded)
        }
        var next = 0
        let prefill = try timed {
            let logits = try runner.forward(prompt, logits: .last)
            next = logits.withUnsafeBufferPointer { Sampler.argmax($0) }
        }
        var decode: [Step] = []
        for _ in 0..<steps {
            decode.append(try timed {
                let logits = try runner.forward([next], logits: .last)
                next = logits.withUnsafeBufferPointer { Sampler.argmax($0) }
            })
        }
        var prefillProfile = KernelProfile(); prefillProfile.add(prefill.batches)
        var decodeProfile = KernelProfile(); decodeProfile.add(decode.flatMap(\.batches))
        return ProfileRun(deviceName: backend.device.info.name, timestampsAvailable: backend.batch.timestampsEnabled,
                          layers: runner.hyper.layers, promptTokens: prompt.count, prefill: prefill, decode: decode,
                          prefillProfile: prefillProfile, decodeProfile: decodeProfile)
    }

    /// Chrome trace-event JSON of the run: thread 1 = prefill, thread 2 = decode.
    public func traceData() throws -> Data {
        try ChromeTrace.data([("prefill", prefill.batches), ("decode", decodeBatches)])
    }

    public func writeTrace(to url: URL) throws { try traceData().write(to: url) }

    /// The tables `layershare profile` prints.
    public func report() -> String {
        var out: [String] = []
        out.append("device: \(deviceName); model \(layers) layers; prompt \(promptTokens) tokens; \(decode.count) decode steps")
        if let fallbackNote {
            out.append(fallbackNote)
            out.append(hostTable())
            return out.joined(separator: "\n") + "\n"
        }
        let steps = max(decode.count, 1)
        out += phaseTable("prefill (\(promptTokens) tokens)", prefillProfile, wallNs: prefill.wallNs, steps: 1)
        out += phaseTable("decode (per step, \(decode.count) steps)", decodeProfile, wallNs: decodeWallNs, steps: steps)
        out += groupTable(decodeProfile, steps: steps)
        return out.joined(separator: "\n") + "\n"
    }

    private func hostTable() -> String {
        let walls = decode.map { $0.wallNs / 1000 }
        var s = "\n== host wall time\nprefill (\(promptTokens) tokens): \(Self.fmt(prefill.wallNs / 1000)) µs"
        if !walls.isEmpty {
            let mean = walls.reduce(0, +) / Double(walls.count)
            s += "\ndecode: \(Self.fmt(mean)) µs/step (min \(Self.fmt(walls.min()!)), max \(Self.fmt(walls.max()!))), "
            s += String(format: "%.1f tok/s", 1e6 / max(mean, 1e-9))
        }
        return s
    }

    private func phaseTable(_ title: String, _ p: KernelProfile, wallNs: Double, steps: Int) -> [String] {
        let s = Double(steps)
        let overhead = max(0, wallNs - p.gpuNs)
        var lines = ["", "== \(title): GPU \(Self.fmt(p.gpuNs / s / 1000)) µs/step, wall \(Self.fmt(wallNs / s / 1000)) µs/step, "
            + "host overhead \(Self.fmt(overhead / s / 1000)) µs/step (\(String(format: "%.1f", overhead / max(wallNs, 1) * 100))%); "
            + "\(Self.fmt(Double(p.dispatches) / s)) timed commands/step"]
        lines.append(Self.pad("kernel", 52) + Self.lpad("calls/step", 11) + Self.lpad("total µs", 11) + Self.lpad("mean µs", 10)
                     + Self.lpad("share", 8) + Self.lpad("GB/s", 8) + Self.lpad("GFLOP/s", 9))
        for r in p.kernelRows {
            lines.append(Self.pad(r.name, 52) + Self.lpad(Self.fmt(Double(r.calls) / s), 11) + Self.lpad(Self.fmt(r.totalNs / s / 1000), 11)
                         + Self.lpad(Self.fmt(r.meanNs / 1000), 10)
                         + Self.lpad(String(format: "%.1f%%", r.totalNs / max(p.gpuNs, 1) * 100), 8)
                         + Self.lpad(r.bytes > 0 ? String(format: "%.2f", r.gigabytesPerSecond) : "-", 8)
                         + Self.lpad(r.flops > 0 ? String(format: "%.2f", r.gigaflopsPerSecond) : "-", 9))
        }
        return lines
    }

    private func groupTable(_ p: KernelProfile, steps: Int) -> [String] {
        var lines = ["", "== decode per layer (µs/step)"]
        lines.append(Self.pad("group", 14) + Self.lpad("µs/step", 10) + Self.lpad("share", 8) + Self.lpad("dispatches", 12))
        for r in p.groupRows {
            lines.append(Self.pad(r.name, 14) + Self.lpad(Self.fmt(r.totalNs / Double(steps) / 1000), 10)
                         + Self.lpad(String(format: "%.1f%%", r.totalNs / max(p.gpuNs, 1) * 100), 8)
                         + Self.lpad(Self.fmt(Double(r.calls) / Double(steps)), 12))
        }
        return lines
    }

    static func fmt(_ v: Double) -> String { v >= 100 ? String(format: "%.0f", v) : String(format: "%.1f", v) }
    static func pad(_ s: String, _ n: Int) -> String { s.count >= n ? String(s.prefix(n - 1)) + " " : s + String(repeating: " ", count: n - s.count) }
    static func lpad(_ s: String, _ n: Int) -> String { s.count >= n ? s : String(repeating: " ", count: n - s.count) + s }
}
