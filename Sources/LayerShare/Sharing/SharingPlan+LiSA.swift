import Foundation

extension SharingPlan {
    /// LiSA layers and the adapter holding their fitted parameters (`LiSAAdapter`).
    public struct LiSASection: Codable, Equatable, Sendable {
        /// Adapter path, relative to the plan file unless absolute.
        public var adapter: String
        /// Content hash of the adapter file (`LiSAAdapter.contentHash`); loading refuses another file.
        public var adapterHash: String
        public var layers: [Int]
        /// What was fitted: "full" (alignment FFN + low rank), "alignment" (f = 0, no low rank), or
        /// another combination of the options below.
        public var variant: String
        public var rank: Int
        public var ffnWidth: Int
        /// Whether the low-rank pairs rotate at the selected RoPE frequencies (rope_sel).
        public var ropeSelect: Bool
        /// Mean fitted KL(P_true ‖ P_LiSA) per layer on the calibration rows, in the order of `layers`.
        public var fittedKL: [Double]?
        /// How the adapter was fitted (text, tokens, steps), for people.
        public var calibration: String?

        public init(adapter: String, adapterHash: String, layers: [Int], variant: String, rank: Int, ffnWidth: Int, ropeSelect: Bool,
                    fittedKL: [Double]? = nil, calibration: String? = nil) {
            self.adapter = adapter; self.adapterHash = adapterHash; self.layers = layers; self.variant = variant
            self.rank = rank; self.ffnWidth = ffnWidth; self.ropeSelect = ropeSelect; self.fittedKL = fittedKL; self.calibration = calibration
        }
    }

    /// LiSA layers: in range, listed once, never layer 0 nor a layer an SA span shares or reads.
    func lisaProblems(layerCount n: Int) -> [PlanProblem] {
        guard let section = lisa else { return [] }
        var problems: [PlanProblem] = []
        var seen = Set<Int>()
        let shared = Set(spans.flatMap { s in s.first <= s.last ? Array(max(0, s.first)...min(n - 1, max(s.last, 0))) : [] })
        for l in section.layers {
            if !(1..<max(n, 1)).contains(l) {
                problems.append(PlanProblem(layer: nil, "lisa.layers names layer \(l), outside 1..<\(n) (layer 0 has no previous layer)"))
            } else if !seen.insert(l).inserted {
                problems.append(PlanProblem(layer: l, "listed more than once in lisa.layers"))
            } else if shared.contains(l) {
                problems.append(PlanProblem(layer: l, "is both LiSA and shared by a Shared Attention span"))
            } else if shared.contains(l - 1) {
                problems.append(PlanProblem(layer: l, "is LiSA but layer \(l - 1) borrows its attention (Shared Attention)"))
            }
        }
        if section.rank < 0 || section.rank % 2 != 0 || section.rank > model.headDim {
            problems.append(PlanProblem(layer: nil, "lisa.rank \(section.rank) must be even and in 0...\(model.headDim) (the head dimension)"))
        }
        if !(0...4096).contains(section.ffnWidth) { problems.append(PlanProblem(layer: nil, "lisa.ffnWidth \(section.ffnWidth) must be in 0...4096")) }
        if let kl = section.fittedKL, kl.count != section.layers.count {
            problems.append(PlanProblem(layer: nil, "lisa.fittedKL has \(kl.count) values for \(section.layers.count) layers"))
        }
        return problems
    }

    /// Summary lines of the LiSA section: layers, what they keep, the K cache and Q/K weights saved.
    var lisaSummaryLines: [String] {
        guard let s = lisa else { return [] }
        let layers = s.layers.sorted()
        let kSaved = layers.count * model.kvHeads * (model.headDim - s.rank) * 4
        return ["LiSA (LayerShare formulation, \(s.variant): rank \(s.rank), FFN width \(s.ffnWidth)\(s.ropeSelect ? ", rope_sel" : "")) in "
                + "\(layers.count) of \(model.layers) layers: \(compactRanges(layers)); K cache saved: \(kSaved) bytes per token"]
    }
}

/// "3-5, 9, 12-14" for sorted integers.
func compactRanges(_ values: [Int]) -> String {
    var parts: [String] = []
    var i = 0
    while i < values.count {
        var j = i
        while j + 1 < values.count && values[j + 1] == values[j] + 1 { j += 1 }
        parts.append(i == j ? "\(values[i])" : "\(values[i])-\(values[j])")
        i = j + 1
    }
    return parts.joined(separator: ", ")
}

extension SharingPlan {
    /// A LiSA plan for `model` (validated; the adapter is the caller's to write first).
    public static func lisa(model: LoadedModel, section: LiSASection, notes: String? = nil) throws -> SharingPlan {
        let identity = try ModelIdentity.of(model)
        var plan = SharingPlan(method: section.layers.isEmpty ? LayerModeName.standard : LayerModeName.lisa, model: identity, layers: nil,
                               sharedAttention: nil, notes: notes)
        plan.lisa = section.layers.isEmpty ? nil : section
        let problems = plan.structuralProblems(layerCount: identity.layers)
        guard problems.isEmpty else { throw SharingPlanError(source: "LiSA layers", problems: problems) }
        plan.layers = plan.derivedLayerEntries(layerCount: identity.layers)
        return plan
    }
}
