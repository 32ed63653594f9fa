import Foundation

/// One thing wrong with a plan, naming the layer when there is one.
public struct PlanProblem: Equatable, Sendable, CustomStringConvertible {
    public let layer: Int?
    public let message: String
    public init(layer: Int?, _ message: String) {
        self.layer = layer
        self.message = message
    }
    public var description: String { layer.map { "layer \($0): \(message)" } ?? message }
}

/// Every problem found in a plan, thrown at once so a user fixes them in one go.
public struct SharingPlanError: Error, CustomStringConvertible {
    public let source: String
    public let problems: [PlanProblem]
    public var description: String {
        "sharing plan \(source) does not fit the model (\(problems.count) problem\(problems.count == 1 ? "" : "s")):\n"
            + problems.map { "  - \($0)" }.joined(separator: "\n")
    }
}

extension SharingPlan {
    /// Checks format, method, spans and per-layer modes against a model of `layerCount` layers.
    func structuralProblems(layerCount n: Int) -> [PlanProblem] {
        var problems: [PlanProblem] = []
        func add(_ layer: Int?, _ message: String) { problems.append(PlanProblem(layer: layer, message)) }

        if format != SharingPlan.formatName { add(nil, "format is \"\(format)\", expected \"\(SharingPlan.formatName)\"") }
        if version != SharingPlan.currentVersion { add(nil, "version \(version) is not supported (this build reads version \(SharingPlan.currentVersion))") }
        let expectedMethod = SharingPlan.methodName(sharedAttention: !spans.isEmpty, headShare: !sharedUnits.isEmpty, lisa: lisa != nil)
        let knownMethods = SharingPlan.knownMethodNames
        if !knownMethods.contains(method) {
            add(nil, "unknown method \"\(method)\" (this build knows \(knownMethods.map { "\"\($0)\"" }.joined(separator: ", ")))")
        } else if method != expectedMethod && !(method == LayerModeName.sharedAttention && spans.isEmpty && sharedUnits.isEmpty) {
            add(nil, "method is \"\(method)\" but the plan's sections make it \"\(expectedMethod)\"")
        }
        problems += headShareProblems(layerCount: n)
        problems += lisaProblems(layerCount: n)

        // Spans: each layer shared by at most one span; record which span shares it.
        var sharedBy: [Int: Int] = [:]
        for (i, s) in spans.enumerated() {
            let name = "span \(i) (\(s.first)-\(s.last))"
            guard s.first <= s.last else { add(s.first, "\(name) ends before it starts"); continue }
            for run in Self.outOfRangeRuns(s, layerCount: n) {
                add(run.lowerBound, run.lowerBound == run.upperBound ? "\(name) names a layer out of range 0..<\(n)"
                    : "\(name) names layers \(run.lowerBound)-\(run.upperBound), out of range 0..<\(n)")
            }
            for l in stride(from: max(s.first, 0), through: min(s.last, n - 1), by: 1) {
                if l == 0 { add(0, "\(name) overlaps layer 0, which can never be shared (it has no earlier layer to reuse)"); continue }
                if let other = sharedBy[l] {
                    add(l, "\(name) overlaps span \(other) (\(spans[other].first)-\(spans[other].last))")
                } else {
                    sharedBy[l] = i
                }
            }
            if s.source < 0 || s.source >= n {
                add(s.source, "source of \(name) is out of range 0..<\(n)")
            } else if s.source >= s.first {
                add(s.source, "source of \(name) must come before the span (the source runs first)")
            }
        }
        for (i, s) in spans.enumerated() {
            if let other = sharedBy[s.source] {
                add(s.source, "source of span \(i) (\(s.first)-\(s.last)) is itself shared, inside span \(other) (\(spans[other].first)-\(spans[other].last)); a source must compute its own attention")
            }
        }

        // Per-layer entries, when given, must cover every layer once and agree with the spans.
        guard let layers else { return problems }
        var seen = Set<Int>()
        for (i, e) in layers.enumerated() {
            guard e.layer >= 0 && e.layer < n else { add(e.layer, "layers[\(i)] names a layer out of range 0..<\(n)"); continue }
            if !seen.insert(e.layer).inserted { add(e.layer, "listed more than once in \"layers\"") }
            guard LayerModeName.known.contains(e.mode) else {
                add(e.layer, "unknown mode \"\(e.mode)\" (this build knows \"standard\", \"sharedAttention\" and \"lisa\")")
                continue
            }
            let isLiSA = lisa?.layers.contains(e.layer) ?? false
            if e.mode == LayerModeName.lisa || isLiSA {
                if e.mode != LayerModeName.lisa { add(e.layer, "mode is \(e.mode) but lisa.layers lists it") }
                else if !isLiSA { add(e.layer, "mode is lisa but lisa.layers does not list it") }
                else if e.source != e.layer - 1 { add(e.layer, "a LiSA layer's source is the previous layer (\(e.layer - 1)), not \(e.source.map(String.init) ?? "missing")") }
                continue
            }
            let spanSource = sharedBy[e.layer].map { spans[$0].source }
            switch (e.mode, spanSource) {
            case (LayerModeName.standard, let src?):
                add(e.layer, "mode is standard but a span shares it (source \(src))")
            case (LayerModeName.sharedAttention, nil):
                add(e.layer, "mode is sharedAttention but no span in \"sharedAttention.spans\" covers it")
            case (LayerModeName.sharedAttention, let src?):
                if e.source != src { add(e.layer, "source is \(e.source.map(String.init) ?? "missing") but its span says \(src)") }
            default:
                if e.source != nil { add(e.layer, "a standard layer has no source") }
            }
        }
        let missing = (0..<n).filter { !seen.contains($0) }
        if !missing.isEmpty && !layers.isEmpty {
            for l in missing { add(l, "missing from \"layers\" (list every layer, or omit \"layers\" to derive it from the spans)") }
        } else if layers.isEmpty && n > 0 {
            add(nil, "\"layers\" is empty (list every layer, or omit it)")
        }
        return problems
    }

    /// The layers of a span below 0 and from `n` on, as at most two runs: a span may name billions.
    static func outOfRangeRuns(_ s: Span, layerCount n: Int) -> [ClosedRange<Int>] {
        var runs: [ClosedRange<Int>] = []
        if s.first < 0 { runs.append(s.first...min(s.last, -1)) }
        if s.last >= n { runs.append(max(s.first, n)...s.last) }
        return runs
    }

    /// Head-share units: each target once, in range, reading an earlier unit that keeps its own weights.
    func headShareProblems(layerCount n: Int) -> [PlanProblem] {
        guard let section = headShare else { return [] }
        var problems: [PlanProblem] = []
        let groups = model.kvHeads
        if !["qk", "q", "k", "v", "qkv"].contains(section.strategy) {
            problems.append(PlanProblem(layer: nil, "headShare.strategy \"\(section.strategy)\" is not one of qk, q, k, v, qkv"))
        }
        if !["original", "authors"].contains(section.chains) {
            problems.append(PlanProblem(layer: nil, "headShare.chains \"\(section.chains)\" is not \"original\" or \"authors\""))
        }
        if !(section.rate >= 0 && section.rate <= 1) {
            problems.append(PlanProblem(layer: nil, "headShare.rate \(section.rate) is outside 0...1"))
        }
        var seen = Set<WeightUnit>()
        for (i, u) in section.units.enumerated() {
            let name = "headShare.units[\(i)] (\(u.target))"
            if !(0..<n).contains(u.layer) || !(0..<groups).contains(u.group) {
                problems.append(PlanProblem(layer: nil, "\(name) is out of range (layers 0..<\(n), groups 0..<\(groups))"))
            } else if !seen.insert(u.target).inserted {
                problems.append(PlanProblem(layer: u.layer, "\(name) is listed more than once"))
            } else if u.reads == u.target {
                problems.append(PlanProblem(layer: u.layer, "\(name) reads itself"))
            }
        }
        guard problems.isEmpty else { return problems }
        return LayerSpec.headLayoutProblems(headLayouts(layers: n, kvHeads: groups), kvHeads: groups)
    }

    /// Layer entries implied by the spans and the LiSA layers (every other layer standard).
    func derivedLayerEntries(layerCount n: Int) -> [LayerEntry] {
        var entries = (0..<n).map { LayerEntry(layer: $0, mode: LayerModeName.standard) }
        for l in lisa?.layers ?? [] where (1..<max(n, 1)).contains(l) {
            entries[l] = LayerEntry(layer: l, mode: LayerModeName.lisa, source: l - 1)
        }
        for s in spans where s.first <= s.last {
            for l in stride(from: max(0, s.first), through: min(n - 1, s.last), by: 1) {
                entries[l] = LayerEntry(layer: l, mode: LayerModeName.sharedAttention, source: s.source)
            }
        }
        return entries
    }
}
