import Foundation

/// What a bench run measured on: written into bench.json next to the results, so a file found
/// later still says which machine, model and code produced it.
public struct BenchEnvironment: Codable, Sendable, Equatable {
    public var backend: String
    public var device: String
    public var model: String
    /// The source commit (`SourceRevision`), "unknown" when it cannot be read.
    public var commit: String
    /// ISO 8601, UTC.
    public var date: String
    public var decodeSteps: Int
    public var runs: Int
    public var textFile: String

    public init(backend: String, device: String, model: String, commit: String? = SourceRevision.current(),
                date: Date = Date(), decodeSteps: Int, runs: Int, textFile: String) {
        self.backend = backend; self.device = device; self.model = model
        self.commit = commit ?? "unknown"
        self.date = ISO8601DateFormatter().string(from: date)
        self.decodeSteps = decodeSteps; self.runs = runs; self.textFile = textFile
    }
}

/// bench.json, bench.md and the decode-speed plot made from bench results.
public enum BenchReport {
    /// The layout of bench.json.
    public struct File: Codable, Sendable {
        public var environment: BenchEnvironment
        public var results: [BenchResult]
    }

    /// bench.json: the environment and the results, keys sorted so reruns diff cleanly.
    public static func json(_ results: [BenchResult], environment: BenchEnvironment) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(File(environment: environment, results: results))
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

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
            .replacingOccurrences(of: "\"", with: "&quot;")
    }
}
