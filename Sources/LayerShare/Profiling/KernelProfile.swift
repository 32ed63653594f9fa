import Foundation
import VulkanCompute

/// Aggregated GPU timings of a run: per kernel (label), per group (layer) and per phase.
public struct KernelProfile {
    public struct Row {
        public let name: String
        public var calls = 0
        public var totalNs = 0.0
        public var bytes = 0.0
        public var flops = 0.0
        public var meanNs: Double { calls == 0 ? 0 : totalNs / Double(calls) }
        public var gigabytesPerSecond: Double { totalNs > 0 ? bytes / totalNs : 0 }
        public var gigaflopsPerSecond: Double { totalNs > 0 ? flops / totalNs : 0 }
    }

    public private(set) var kernels: [String: Row] = [:]
    public private(set) var groups: [String: Row] = [:]
    public private(set) var gpuNs = 0.0
    /// Timed commands (dispatches and copies).
    public private(set) var dispatches = 0

    public init() {}

    public mutating func add(_ batches: [[DispatchTiming]]) {
        for batch in batches {
            for t in batch {
                kernels[t.label, default: Row(name: t.label)].record(t)
                let group = t.group.isEmpty ? "(none)" : t.group
                groups[group, default: Row(name: group)].record(t)
                gpuNs += t.durationNs
                dispatches += 1
            }
        }
    }

    public var kernelRows: [Row] { kernels.values.sorted { $0.totalNs > $1.totalNs } }

    /// Groups in model order: embedding, layer 0…L−1, output.
    public var groupRows: [Row] {
        func rank(_ name: String) -> Int {
            if name == "embedding" { return -1 }
            if name.hasPrefix("layer "), let n = Int(name.dropFirst(6)) { return n }
            return 1_000_000
        }
        return groups.values.sorted { rank($0.name) < rank($1.name) }
    }
}

extension KernelProfile.Row {
    mutating func record(_ t: DispatchTiming) {
        calls += 1
        totalNs += t.durationNs
        bytes += t.bytes
        flops += t.flops
    }
}

/// Chrome trace-event JSON (chrome://tracing, Perfetto): one complete event per timed command.
public enum ChromeTrace {
    public static func write(_ phases: [(name: String, batches: [[DispatchTiming]])], to url: URL) throws {
        try data(phases).write(to: url)
    }

    /// Batches are laid end to end (1 µs apart) on one timeline; each phase is its own thread.
    public static func data(_ phases: [(name: String, batches: [[DispatchTiming]])]) throws -> Data {
        var events: [[String: Any]] = []
        var cursorUs = 0.0
        for (tid, phase) in phases.enumerated() {
            events.append(["name": "thread_name", "ph": "M", "pid": 1, "tid": tid + 1, "args": ["name": phase.name]])
            for batch in phase.batches {
                for t in batch {
                    var args: [String: Any] = ["layer": t.group]
                    if t.bytes > 0 { args["bytes"] = t.bytes }
                    if t.flops > 0 { args["flops"] = t.flops }
                    events.append(["name": t.label, "cat": t.group.isEmpty ? "gpu" : t.group, "ph": "X",
                                   "ts": cursorUs + t.startNs / 1000, "dur": t.durationNs / 1000,
                                   "pid": 1, "tid": tid + 1, "args": args])
                }
                cursorUs += (batch.last.map { $0.startNs + $0.durationNs } ?? 0) / 1000 + 1
            }
        }
        return try JSONSerialization.data(withJSONObject: ["traceEvents": events, "displayTimeUnit": "ms"], options: [.sortedKeys])
    }
}
