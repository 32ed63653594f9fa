/// Bytes allocated in each memory heap, checked against that heap's size: a device-local heap
/// and a host heap fill up separately (one total across heaps would refuse a staging buffer
/// because the device-local heap is full, or admit more than a heap holds).
struct HeapUsage {
    let sizes: [Int]
    private(set) var used: [Int]

    init(sizes: [Int]) {
        self.sizes = sizes
        used = Array(repeating: 0, count: sizes.count)
    }

    /// Counts `bytes` against `heap` when they fit; otherwise why not.
    mutating func reserve(_ bytes: Int, heap: Int) -> String? {
        guard used[heap] + bytes <= sizes[heap] else {
            return "memory heap \(heap) holds \(formatBytes(sizes[heap])), \(formatBytes(used[heap])) already in use"
        }
        used[heap] += bytes
        return nil
    }

    mutating func release(_ bytes: Int, heap: Int) { used[heap] -= bytes }
}
