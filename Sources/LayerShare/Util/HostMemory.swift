import Foundation

/// Memory this process can still take on the host: `MemAvailable` of /proc/meminfo, lowered to
/// the cgroup's remaining limit where one is set; the physical memory where neither is readable.
enum HostMemory {
    static func available() -> Int {
        var best = meminfoAvailable() ?? Int(clamping: ProcessInfo.processInfo.physicalMemory)
        if let limit = cgroupValue("memory.max"), let used = cgroupValue("memory.current") {
            best = min(best, max(0, limit - used))
        }
        return best
    }

    private static func meminfoAvailable() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
            let kib = line.split(separator: " ").dropFirst().first.flatMap { Int($0) }
            return kib.map { $0 * 1024 }
        }
        return nil
    }

    /// A number from the process's cgroup v2 directory ("max" and absent files are nil).
    private static func cgroupValue(_ name: String) -> Int? {
        guard let text = try? String(contentsOfFile: "/sys/fs/cgroup/\(name)", encoding: .utf8) else { return nil }
        return Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
