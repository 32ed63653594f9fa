/// Watches generated text for stop strings (`--stop`): text is released only once it can no
/// longer be the start of one, so a stop string is never printed, even split across tokens.
public struct StopText: Sendable {
    public let stops: [String]
    private var pending = ""
    /// Whether a stop string has been seen; nothing more is released after it.
    public private(set) var stopped = false

    public init(_ stops: [String]) {
        self.stops = stops.filter { !$0.isEmpty }
    }

    /// Adds a piece of output; returns the text that is safe to show now.
    public mutating func append(_ piece: String) -> String {
        guard !stopped else { return "" }
        pending += piece
        if let cut = stops.compactMap({ pending.range(of: $0)?.lowerBound }).min() {
            stopped = true
            defer { pending = "" }
            return String(pending[..<cut])
        }
        let held = heldBack()
        defer { pending = String(pending.suffix(held)) }
        return String(pending.dropLast(held))
    }

    /// What is still held back, for the end of generation.
    public mutating func finish() -> String {
        defer { pending = "" }
        return stopped ? "" : pending
    }

    /// Characters at the end of `pending` that begin some stop string.
    private func heldBack() -> Int {
        var longest = 0
        for stop in stops {
            for length in stride(from: min(stop.count, pending.count), to: longest, by: -1)
            where pending.hasSuffix(stop.prefix(length)) {
                longest = length
                break
            }
        }
        return longest
    }
}
