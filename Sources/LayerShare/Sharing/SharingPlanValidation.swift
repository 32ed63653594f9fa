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
        if ![LayerModeName.standard, LayerModeName.sharedAttention].contains(method) {
            add(nil, "unknown method \"\(method)\" (this build knows \"standard\" and \"sharedAttention\")")
        }

        // Spans: each layer shared by at most one span; record which span shares it.
        var sharedBy: [Int: Int] = [:]
        for (i, s) in spans.enumerated() {
            let name = "span \(i) (\(s.first)-\(s.last))"
            guard s.first <= s.last else { add(s.first, "\(name) ends before it starts"); continue }
            for l in s.first...s.last {
                if l < 0 || l >= n { add(l, "\(name) names a layer out of range 0..<\(n)"); continue }
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
        if !sharedBy.isEmpty && method != LayerModeName.sharedAttention {
            add(nil, "method is \"\(method)\" but the plan has Shared Attention spans")
        }

        // Per-layer entries, when given, must cover every layer once and agree with the spans.
        guard let layers else { return problems }
        var seen = Set<Int>()
        for (i, e) in layers.enumerated() {
            guard e.layer >= 0 && e.layer < n else { add(e.layer, "layers[\(i)] names a layer out of range 0..<\(n)"); continue }
            if !seen.insert(e.layer).inserted { add(e.layer, "listed more than once in \"layers\"") }
            guard LayerModeName.known.contains(e.mode) else {
                add(e.layer, "unknown mode \"\(e.mode)\" (this build knows \"standard\" and \"sharedAttention\")")
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

    /// Layer entries implied by the spans (every other layer standard).
    func derivedLayerEntries(layerCount n: Int) -> [LayerEntry] {
        var entries = (0..<n).map { LayerEntry(layer: $0, mode: LayerModeName.standard) }
        for s in spans where s.first <= s.last {
            for l in max(0, s.first)...min(n - 1, s.last) {
                entries[l] = LayerEntry(layer: l, mode: LayerModeName.sharedAttention, source: s.source)
            }
        }
        return entries
    }
}
