import ArgumentParser
import Foundation
import LayerShare

struct ProfileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile",
        abstract: "Time every GPU dispatch of a prefill and N decode steps; print per-kernel and per-layer tables.",
        discussion: """
        GB/s and GFLOP/s are computed from the bytes each kernel must move and the operations it must do
        (weights, activations, KV cache), not from hardware counters. Host overhead is wall time not covered
        by GPU work (recording, submission, synchronisation). --trace writes a Chrome trace-event JSON
        (open in Perfetto or chrome://tracing).
        """
    )

    @OptionGroup var options: ModelOptions

    @Option(help: "Prompt text, or @FILE.")
    var prompt = "The history of computing is a story of abstraction layered upon abstraction."

    @Option(help: "Decode steps to time after the prompt.")
    var tokens = 32

    @Option(help: "Write a Chrome trace-event JSON here.")
    var trace: String?

    func run() throws {
        guard options.backend == .vulkan else { throw ValidationError("profile times GPU dispatches: use the vulkan backend") }
        let model = try options.loadModel()
        let ids = model.tokenizer.encode(try readPromptText(prompt))
        guard !ids.isEmpty else { throw ValidationError("the prompt encodes to no tokens") }
        var runnerOptions = options.runnerOptions()
        runnerOptions.profiling = true
        if runnerOptions.context == nil { runnerOptions.context = ids.count + tokens + 1 }
        let session = try RunnerFactory.makeVulkan(model: model, options: runnerOptions, log: note)
        let runner = session.runner
        let backend = session.backend
        if !backend.device.info.timestampsSupported {
            note("note: \(backend.device.info.name) has no timestamp queries; only host-side timings are shown")
        }
        // Warm-up (pipeline JIT) outside the measurement.
        try runner.forward(Array(ids.prefix(2)), logits: .last)
        runner.reset()
        _ = backend.takeTimings()

        let t0 = DispatchTime.now().uptimeNanoseconds
        var logits = try runner.forward(ids, logits: .last)
        let prefillWall = Double(DispatchTime.now().uptimeNanoseconds - t0)
        let prefillBatches = backend.takeTimings()
        var next = logits.withUnsafeBufferPointer { Sampler.argmax($0) }
        let t1 = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<tokens {
            logits = try runner.forward([next], logits: .last)
            next = logits.withUnsafeBufferPointer { Sampler.argmax($0) }
        }
        let decodeWall = Double(DispatchTime.now().uptimeNanoseconds - t1)
        let decodeBatches = backend.takeTimings()

        var prefill = KernelProfile(); prefill.add(prefillBatches)
        var decode = KernelProfile(); decode.add(decodeBatches)
        print("device: \(backend.device.info.name); model \(model.hyper.layers) layers; prompt \(ids.count) tokens; \(tokens) decode steps")
        printPhase("prefill (\(ids.count) tokens)", prefill, wallNs: prefillWall, steps: 1)
        printPhase("decode (per step, \(tokens) steps)", decode, wallNs: decodeWall, steps: max(tokens, 1))
        printGroups(decode, steps: max(tokens, 1))
        if let trace {
            try ChromeTrace.write([("prefill", prefillBatches), ("decode", decodeBatches)], to: URL(fileURLWithPath: trace))
            note("trace written to \(trace)")
        }
    }

    private func printPhase(_ title: String, _ p: KernelProfile, wallNs: Double, steps: Int) {
        let s = Double(steps)
        print("\n== \(title): GPU \(fmt(p.gpuNs / s / 1000)) µs/step, wall \(fmt(wallNs / s / 1000)) µs/step, host overhead \(fmt(max(0, wallNs - p.gpuNs) / s / 1000)) µs/step (\(String(format: "%.1f", max(0, wallNs - p.gpuNs) / max(wallNs, 1) * 100))%)")
        print(pad("kernel", 52) + lpad("calls/step", 11) + lpad("total µs", 11) + lpad("mean µs", 10) + lpad("share", 8) + lpad("GB/s", 8) + lpad("GFLOP/s", 9))
        for r in p.kernelRows {
            print(pad(r.name, 52) + lpad(fmt(Double(r.calls) / s), 11) + lpad(fmt(r.totalNs / s / 1000), 11) + lpad(fmt(r.meanNs / 1000), 10)
                  + lpad(String(format: "%.1f%%", r.totalNs / max(p.gpuNs, 1) * 100), 8)
                  + lpad(r.bytes > 0 ? String(format: "%.2f", r.gigabytesPerSecond) : "-", 8)
                  + lpad(r.flops > 0 ? String(format: "%.2f", r.gigaflopsPerSecond) : "-", 9))
        }
    }

    private func printGroups(_ p: KernelProfile, steps: Int) {
        print("\n== decode per layer (µs/step)")
        print(pad("group", 14) + lpad("µs/step", 10) + lpad("share", 8) + lpad("dispatches", 12))
        for r in p.groupRows {
            print(pad(r.name, 14) + lpad(fmt(r.totalNs / Double(steps) / 1000), 10)
                  + lpad(String(format: "%.1f%%", r.totalNs / max(p.gpuNs, 1) * 100), 8) + lpad(fmt(Double(r.calls) / Double(steps)), 12))
        }
    }
}

func fmt(_ v: Double) -> String { v >= 100 ? String(format: "%.0f", v) : String(format: "%.1f", v) }
func pad(_ s: String, _ n: Int) -> String { s.count >= n ? String(s.prefix(n - 1)) + " " : s + String(repeating: " ", count: n - s.count) }
func lpad(_ s: String, _ n: Int) -> String { s.count >= n ? s : String(repeating: " ", count: n - s.count) + s }
