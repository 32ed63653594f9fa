/// What to do when a selected target is also the best match of another selected target (a chain
/// C → B → A → R). Either way every shared unit ends up reading a unit that keeps its own weights,
/// so each slice read is an original one stored once.
public enum HeadShareChains: String, CaseIterable, Sendable {
    /// Every selected target is shared and reads the root of its chain (C, B and A read R).
    case original
    /// The reference code's DirectShare loop (methods.md §3.4): targets in ascending layer order map
    /// themselves and their reference to the reference's original weights, so a target that is later
    /// used as a reference is overwritten back to its own weights. C reads B; A and B stay unshared.
    case authors

    /// The units to share for these selected matches; `cosines` gives the similarity to the unit read.
    public func resolve(_ selected: [HeadMatch], cosines: UnitCosines) -> [SharingPlan.SharedUnit] {
        let reads: [WeightUnit: WeightUnit]
        switch self {
        case .original: reads = Self.roots(selected)
        case .authors: reads = Self.authorsLoop(selected)
        }
        return reads.filter { $0.key != $0.value }.sorted { $0.key < $1.key }.map { target, source in
            SharingPlan.SharedUnit(layer: target.layer, group: target.group, reads: source, similarity: cosines(target, source))
        }
    }

    /// Each target → the end of its chain of references (references are earlier, so chains end).
    static func roots(_ selected: [HeadMatch]) -> [WeightUnit: WeightUnit] {
        let reference = Dictionary(selected.map { ($0.target, $0.reference) }, uniquingKeysWith: { a, _ in a })
        var out: [WeightUnit: WeightUnit] = [:]
        for target in reference.keys.sorted() {
            // Ascending order: an earlier target's root is already known.
            let r = reference[target]!
            out[target] = out[r] ?? r
        }
        return out
    }

    /// unit → whose original weights it uses, after the reference loop.
    static func authorsLoop(_ selected: [HeadMatch]) -> [WeightUnit: WeightUnit] {
        var map: [WeightUnit: WeightUnit] = [:]
        for m in selected.sorted(by: { $0.target < $1.target }) {
            map[m.target] = m.reference
            map[m.reference] = m.reference
        }
        return map
    }
}
