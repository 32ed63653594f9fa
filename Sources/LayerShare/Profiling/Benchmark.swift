import Foundation
import ModelFormats
import VulkanCompute

/// One measured configuration of `layershare bench`.
public struct BenchResult: Codable, Sendable {
    public var plan: String
    public var context: Int
    public var prefillTokensPerSecond: Double
    /// Median, min and max over the runs.
    public var decodeTokensPerSecond: Double
    public var decodeMin: Double
    public var decodeMax: Double
    public var weightBytes: Int
    public var kvCacheBytes: Int
    public var peakDeviceBytes: Int

    public init(plan: String, context: Int, prefillTokensPerSecond: Double, decodeTokensPerSecond: Double, decodeMin: Double,
                decodeMax: Double, weightBytes: Int, kvCacheBytes: Int, peakDeviceBytes: Int) {
        self.plan = plan; self.context = context; self.prefillTokensPerSecond = prefillTokensPerSecond
        self.decodeTokensPerSecond = decodeTokensPerSecond; self.decodeMin = decodeMin; self.decodeMax = decodeMax
        self.weightBytes = weightBytes; self.kvCacheBytes = kvCacheBytes; self.peakDeviceBytes = peakDeviceBytes
    }
}

/// Measures prefill and decode speed of a runner at a given context length: prefill `context` tokens
/// of text, then `runs` times decode `steps` tokens starting right after the prefill (rewinding between runs).
/// A short untimed prefill and decode step come first, so that one-time work (drivers that compile
/// pipelines on first use, like lavapipe) is not counted as prefill time.
public struct Benchmark {
    public var steps: Int
    public var runs: Int

    public init(steps: Int = 16, runs: Int = 3) throws {
        guard steps >= 1, runs >= 1 else { throw ModelLoadError("bench needs at least 1 step and 1 run") }
        self.steps = steps
        self.runs = runs
    }

    public func measure(_ runner: ModelRunner, tokens: [Int], context: Int) throws -> (prefill: Double, decode: [Double]) {
        guard tokens.count >= context else {
            throw ModelLoadError("bench text has \(tokens.count) tokens, need \(context) for this context length")
        }
        guard context + steps <= runner.capacity else {
            throw ModelLoadError("context \(context) + \(steps) steps exceeds the runner's capacity \(runner.capacity)")
        }
        runner.reset()
        let warmUp = try runner.forward(Array(tokens.prefix(min(context, 16))), logits: .last)
        _ = try runner.forward([warmUp.withUnsafeBufferPointer { Sampler.argmax($0) }], logits: .last)
        runner.reset()
        let t0 = DispatchTime.now().uptimeNanoseconds
        let logits = try runner.forward(Array(tokens.prefix(context)), logits: .last)
        let prefill = Double(context) / (Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        let first = logits.withUnsafeBufferPointer { Sampler.argmax($0) }
        var rates: [Double] = []
        for _ in 0..<runs {
            try runner.rewind(to: context)
            var next = first
            let t1 = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<steps {
                let row = try runner.forward([next], logits: .last)
                next = row.withUnsafeBufferPointer { Sampler.argmax($0) }
            }
            rates.append(Double(steps) / (Double(DispatchTime.now().uptimeNanoseconds - t1) / 1e9))
        }
        return (prefill, rates)
    }

    /// One `BenchResult` per context length for a runner (labelled `plan`). `backend` supplies the
    /// memory figures on Vulkan (nil on the CPU path: weight and peak device bytes are 0).
    public func results(plan: String, runner: ModelRunner, backend: VulkanBackend?, tokens: [Int], contexts: [Int],
                        progress: (String) -> Void = { _ in }) throws -> [BenchResult] {
        try contexts.map { context in
            progress("[\(plan)] context \(context): prefill + \(runs)×\(steps) decode steps…")
            let (prefill, decode) = try measure(runner, tokens: tokens, context: context)
            let r = BenchResult(plan: plan, context: context, prefillTokensPerSecond: prefill,
                                decodeTokensPerSecond: Self.median(decode), decodeMin: decode.min()!, decodeMax: decode.max()!,
                                weightBytes: backend?.weightBytes ?? 0,
                                kvCacheBytes: runner.kvCacheBytes * context / runner.capacity,
                                peakDeviceBytes: backend?.device.peakAllocatedBytes ?? 0)
            progress(String(format: "  prefill %.1f tok/s, decode %.1f tok/s (%.1f–%.1f)", r.prefillTokensPerSecond,
                            r.decodeTokensPerSecond, r.decodeMin, r.decodeMax))
            return r
        }
    }

    public static func median(_ values: [Double]) -> Double {
        let s = values.sorted()
        return s.isEmpty ? .nan : (s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2)
    }
}
