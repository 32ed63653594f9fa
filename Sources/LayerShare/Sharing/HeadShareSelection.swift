import Foundation

/// The global selection (methods.md §3.3): the targets with the highest best-match similarity, as
/// many as the share rate asks of all units (layer 0 included), then the chain policy applied.
public struct HeadShareSelection: Sendable {
    public let matches: HeadShareMatches
    public let rate: Double
    public let chains: HeadShareChains
    /// Int(rate · all units), before clamping to the number of targets.
    public let requested: Int
    /// The top of the ranking, best first.
    public let selected: [HeadMatch]
    /// What the plan records: each shared unit and the unit it reads.
    public let units: [SharingPlan.SharedUnit]

    public init(matches: HeadShareMatches, rate: Double, chains: HeadShareChains) throws {
        self.matches = matches
        self.rate = rate
        self.chains = chains
        requested = try HeadShareMatches.count(rate: rate, units: matches.unitCount)
        selected = matches.selected(count: requested)
        units = chains.resolve(selected, cosines: matches.cosines)
    }

    /// Similarity of the last unit selected (nil when none is).
    public var threshold: Double? { selected.last?.similarity }

    /// Selected targets that stay unshared under the chain policy (authors: those used as references).
    public var keptOwn: [WeightUnit] {
        let shared = Set(units.map(\.target))
        return selected.map(\.target).filter { !shared.contains($0) }.sorted()
    }

    /// Min, median and max of every target's best similarity.
    public var bestRange: (min: Double, median: Double, max: Double)? {
        let v = matches.best.map(\.similarity).sorted()
        guard let first = v.first, let last = v.last else { return nil }
        let mid = v.count / 2
        return (first, v.count % 2 == 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2, last)
    }

    /// The lines `plan headshare` prints before the plan's summary.
    public func reportLines() -> [String] {
        let m = matches
        var lines = ["strategy \(m.strategy.rawValue): \(m.unitCount) units (\(m.layers) layers × \(m.kvHeads) KV groups), "
                     + "\(m.best.count) targets (layers 1-\(m.layers - 1)) matched against every unit of every earlier layer"]
        if let r = bestRange {
            lines.append(String(format: "best-match cosine: min %.5f, median %.5f, max %.5f", r.min, r.median, r.max))
        }
        var picked = "selected \(selected.count) units (int(\(rate) × \(m.unitCount)) = \(requested)"
        if selected.count < requested { picked += ", clamped to the \(m.best.count) targets" }
        picked += ")"
        if let t = threshold { picked += String(format: "; threshold (cosine of the last selected) %.5f", t) }
        lines.append(picked)
        let kept = keptOwn
        lines.append("chains \(chains.rawValue): \(units.count) units shared" + (kept.isEmpty ? "" :
            "; \(kept.count) selected targets keep their own weights because others read them: "
            + kept.map { "L\($0.layer)g\($0.group)" }.joined(separator: " ")))
        lines += tableLines()
        return lines
    }

    /// One row per layer with shared units: count, and each group with the unit it reads.
    func tableLines() -> [String] {
        guard !units.isEmpty else { return [] }
        var lines = ["layer  shared  group ← unit read (cosine)"]
        for (layer, group) in Dictionary(grouping: units, by: \.layer).sorted(by: { $0.key < $1.key }) {
            let reads = group.map { u in
                "g\(u.group) ← L\(u.reads.layer)g\(u.reads.group)" + (u.similarity.map { String(format: " (%.4f)", $0) } ?? "")
            }
            lines.append(String(format: "%5d  %6d  ", layer, group.count) + reads.joined(separator: ", "))
        }
        return lines
    }
}
