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

/// Markdown table and SVG line plot of bench results.
public enum BenchReport {
    /// bench.json: the results array, keys sorted so reruns diff cleanly.
    public static func json(_ results: [BenchResult]) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(results)
    }

    public static func markdown(_ results: [BenchResult], header: String) -> String {
        var lines = [header, "",
                     "| plan | context | prefill tok/s | decode tok/s (median, min–max) | weights | KV cache | peak device memory |",
                     "|---|---:|---:|---:|---:|---:|---:|"]
        for r in results {
            lines.append(String(format: "| %@ | %d | %.1f | %.1f (%.1f–%.1f) | %@ | %@ | %@ |", r.plan as NSString, r.context,
                                r.prefillTokensPerSecond, r.decodeTokensPerSecond, r.decodeMin, r.decodeMax,
                                mib(r.weightBytes) as NSString, mib(r.kvCacheBytes) as NSString, mib(r.peakDeviceBytes) as NSString))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func mib(_ bytes: Int) -> String { String(format: "%.1f MiB", Double(bytes) / 1_048_576) }

    /// Decode tok/s against context length, one line per plan.
    public static func svg(_ results: [BenchResult], title: String) -> String {
        let width = 820.0, height = 440.0, left = 70.0, right = 280.0, top = 40.0, bottom = 60.0
        let plans = results.map(\.plan).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        let contexts = Array(Set(results.map(\.context))).sorted()
        let maxY = (results.map(\.decodeMax).max() ?? 1) * 1.1
        let plotW = width - left - right, plotH = height - top - bottom
        func x(_ c: Int) -> Double {
            guard contexts.count > 1, let lo = contexts.first, let hi = contexts.last else { return left + plotW / 2 }
            return left + plotW * (log2(Double(c)) - log2(Double(lo))) / (log2(Double(hi)) - log2(Double(lo)))
        }
        func y(_ v: Double) -> Double { top + plotH * (1 - v / maxY) }
        let colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text x=\"\(width / 2)\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">\(escape(title))</text>\n"
        s += "<line x1=\"\(left)\" y1=\"\(top + plotH)\" x2=\"\(left + plotW)\" y2=\"\(top + plotH)\" stroke=\"black\"/>\n"
        s += "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(top + plotH)\" stroke=\"black\"/>\n"
        for c in contexts {
            s += "<line x1=\"\(x(c))\" y1=\"\(top + plotH)\" x2=\"\(x(c))\" y2=\"\(top + plotH + 5)\" stroke=\"black\"/>"
            s += "<text x=\"\(x(c))\" y=\"\(top + plotH + 20)\" text-anchor=\"middle\">\(c)</text>\n"
        }
        for i in 0...5 {
            let v = maxY * Double(i) / 5
            s += "<line x1=\"\(left - 5)\" y1=\"\(y(v))\" x2=\"\(left + plotW)\" y2=\"\(y(v))\" stroke=\"#ddd\"/>"
            s += "<text x=\"\(left - 8)\" y=\"\(y(v) + 4)\" text-anchor=\"end\">\(String(format: "%.0f", v))</text>\n"
        }
        s += "<text x=\"\(left + plotW / 2)\" y=\"\(height - 15)\" text-anchor=\"middle\">context length (tokens, log scale)</text>\n"
        s += "<text transform=\"translate(18,\(top + plotH / 2)) rotate(-90)\" text-anchor=\"middle\">decode tokens/s (median)</text>\n"
        for (i, plan) in plans.enumerated() {
            let color = colors[i % colors.count]
            let points = results.filter { $0.plan == plan }.sorted { $0.context < $1.context }
            let path = points.map { String(format: "%.1f,%.1f", x($0.context), y($0.decodeTokensPerSecond)) }.joined(separator: " ")
            s += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"/>\n"
            for p in points {
                s += "<circle cx=\"\(x(p.context))\" cy=\"\(y(p.decodeTokensPerSecond))\" r=\"3\" fill=\"\(color)\"/>"
                s += "<line x1=\"\(x(p.context))\" y1=\"\(y(p.decodeMin))\" x2=\"\(x(p.context))\" y2=\"\(y(p.decodeMax))\" stroke=\"\(color)\"/>\n"
            }
            let ly = top + 10 + Double(i) * 20
            s += "<line x1=\"\(left + plotW + 15)\" y1=\"\(ly)\" x2=\"\(left + plotW + 35)\" y2=\"\(ly)\" stroke=\"\(color)\" stroke-width=\"2\"/>"
            s += "<text x=\"\(left + plotW + 40)\" y=\"\(ly + 4)\">\(escape(plan))</text>\n"
        }
        return s + "</svg>\n"
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    /// Renders an SVG file to PNG with rsvg-convert (installed by tools/bootstrap). Returns false if unavailable.
    @discardableResult
    public static func renderPNG(svg: URL, png: URL) -> Bool {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["rsvg-convert", "-o", png.path, svg.path]
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }
}
