import Foundation
import ModelFormats

/// One JSON file format for every attention-sharing method.
///
/// `layers` gives each layer's mode (the part the runtime needs); method sections hold the details
/// a method was configured with (`sharedAttention.spans` now; head-wise and LiSA add their own optional
/// sections). Loading checks that both agree and that everything fits the model (see `SharingPlanValidation`).
public struct SharingPlan: Codable, Equatable, Sendable {
    public static let formatName = "layershare-sharing-plan"
    public static let currentVersion = 1

    public var format: String = SharingPlan.formatName
    public var version: Int = SharingPlan.currentVersion
    /// The methods the plan uses: "standard" (nothing shared), "sharedAttention", "headShare", or
    /// several joined by "+" ("sharedAttention+headShare").
    public var method: String
    public var model: ModelIdentity
    /// One entry per layer, in order. Optional when reading: derived from the method sections if absent.
    public var layers: [LayerEntry]?
    public var sharedAttention: SharedAttentionSection?
    public var headShare: HeadShareSection?
    public var lisa: LiSASection?
    /// Free text: how the plan was made (analysis file, perplexity budget, ...).
    public var notes: String?
    /// The LiSA adapter's parameters by layer, read by `load` (not part of the JSON).
    public var lisaParameters: [Int: LiSALayerParameters] = [:]

    enum CodingKeys: String, CodingKey {
        case format, version, method, model, layers, sharedAttention, headShare, lisa, notes
    }

    public struct LayerEntry: Codable, Equatable, Sendable {
        public var layer: Int
        /// "standard", "sharedAttention" or "lisa".
        public var mode: String
        /// Source layer of a "sharedAttention" layer (the previous layer for "lisa").
        public var source: Int?
        public init(layer: Int, mode: String, source: Int? = nil) {
            self.layer = layer
            self.mode = mode
            self.source = source
        }
    }

    public struct SharedAttentionSection: Codable, Equatable, Sendable {
        public var spans: [Span]
        public init(spans: [Span]) { self.spans = spans }
    }

    /// Layers `first...last` reuse the softmax probabilities of `source` (code convention: first − 1).
    public struct Span: Codable, Equatable, Sendable {
        public var first: Int
        public var last: Int
        public var source: Int
        public init(first: Int, last: Int, source: Int) {
            self.first = first
            self.last = last
            self.source = source
        }
        public var description: String { "\(first)-\(last) (source \(source))" }
    }

    /// Head-wise sharing (DirectShare): KV groups that read an earlier group's weight slices.
    public struct HeadShareSection: Codable, Equatable, Sendable {
        /// Which weights the similarity compared ("qk", "q", "k", "v", "qkv").
        public var strategy: String
        /// Share rate asked for: shared units / all units of the model.
        public var rate: Double
        /// How chains were resolved: "original" (every target reads a unit that keeps its weights) or
        /// "authors" (the reference implementation's behaviour: a target that is another's reference keeps its own).
        public var chains: String
        public var units: [SharedUnit]
        public init(strategy: String, rate: Double, chains: String, units: [SharedUnit]) {
            self.strategy = strategy; self.rate = rate; self.chains = chains; self.units = units
        }
    }

    /// Group `group` of `layer` reads the weights of unit `reads`.
    public struct SharedUnit: Codable, Equatable, Sendable {
        public var layer: Int
        public var group: Int
        public var reads: WeightUnit
        /// Cosine similarity of the two units' descriptors (informational).
        public var similarity: Double?
        public init(layer: Int, group: Int, reads: WeightUnit, similarity: Double? = nil) {
            self.layer = layer; self.group = group; self.reads = reads; self.similarity = similarity
        }
        public var target: WeightUnit { WeightUnit(layer: layer, group: group) }
    }

    public init(method: String, model: ModelIdentity, layers: [LayerEntry]?, sharedAttention: SharedAttentionSection?,
                headShare: HeadShareSection? = nil, notes: String? = nil) {
        self.method = method
        self.model = model
        self.layers = layers
        self.sharedAttention = sharedAttention
        self.headShare = headShare
        self.notes = notes
    }

    /// The method name for the sections a plan has.
    static func methodName(sharedAttention: Bool, headShare: Bool, lisa: Bool = false) -> String {
        let names = [sharedAttention ? LayerModeName.sharedAttention : nil, headShare ? MethodName.headShare : nil,
                     lisa ? LayerModeName.lisa : nil].compactMap { $0 }
        return names.isEmpty ? LayerModeName.standard : names.joined(separator: "+")
    }

    /// Every method name this build reads.
    static var knownMethodNames: [String] {
        var names = [LayerModeName.standard]
        for sa in [false, true] { for hs in [false, true] { for li in [false, true] where sa || hs || li {
            names.append(methodName(sharedAttention: sa, headShare: hs, lisa: li))
        } } }
        return names
    }

    /// A Shared Attention plan: each range `a...b` is shared and reuses layer a − 1. Validated against the model.
    public static func sharedAttention(spans: [ClosedRange<Int>], model: LoadedModel, notes: String? = nil) throws -> SharingPlan {
        let identity = try ModelIdentity.of(model)
        let list = spanList(spans)
        var plan = SharingPlan(method: list.isEmpty ? "standard" : "sharedAttention", model: identity, layers: nil,
                               sharedAttention: SharedAttentionSection(spans: list), notes: notes)
        let problems = plan.structuralProblems(layerCount: identity.layers)
        guard problems.isEmpty else { throw SharingPlanError(source: "spans", problems: problems) }
        plan.layers = plan.derivedLayerEntries(layerCount: identity.layers)
        return plan
    }

    /// Spans for ranges `a...b`, each reusing layer a − 1, in layer order.
    static func spanList(_ spans: [ClosedRange<Int>]) -> [Span] {
        spans.sorted { $0.lowerBound < $1.lowerBound }.map { Span(first: $0.lowerBound, last: $0.upperBound, source: $0.lowerBound - 1) }
    }

    /// The layer specs of this plan for a model of this shape (shape and structure checked; the
    /// weights hash is checked by `load`). The one place a plan's JSON becomes `[LayerSpec]`.
    public func layerSpecs(for hyper: LlamaHyperParameters) throws -> [LayerSpec] {
        let actual = ModelIdentity(hyper: hyper, weightsHash: nil, file: nil)
        let problems = model.mismatches(against: actual).map { PlanProblem(layer: nil, $0) } + structuralProblems(layerCount: hyper.layers)
        guard problems.isEmpty else { throw SharingPlanError(source: "plan", problems: problems) }
        var sources = [LayerSpec.ScoreSource](repeating: .own, count: hyper.layers)
        for e in layers ?? derivedLayerEntries(layerCount: hyper.layers) {
            if e.mode == LayerModeName.sharedAttention { sources[e.layer] = .shared(from: e.source!) }
            if e.mode == LayerModeName.lisa {
                guard let p = lisaParameters[e.layer] else {
                    throw SharingPlanError(source: "plan", problems: [PlanProblem(layer: e.layer, "is LiSA but its adapter parameters are not loaded (read the plan with SharingPlan.load)")])
                }
                sources[e.layer] = .lisa(p)
            }
        }
        return try LayerSpec.resolve(sources, heads: headLayouts(layers: hyper.layers, kvHeads: hyper.kvHeads), kvHeads: hyper.kvHeads)
    }

    /// Per-layer head layouts from the head-share section (identity where it names nothing).
    func headLayouts(layers n: Int, kvHeads: Int) -> [HeadLayout] {
        var sources = (0..<n).map { l in (0..<kvHeads).map { WeightUnit(layer: l, group: $0) } }
        for u in headShare?.units ?? [] where (0..<n).contains(u.layer) && (0..<kvHeads).contains(u.group) {
            sources[u.layer][u.group] = u.reads
        }
        return sources.map(HeadLayout.init(sources:))
    }

    /// Units that read another unit's weights (empty without a head-share section).
    public var sharedUnits: [SharedUnit] { headShare?.units ?? [] }

    /// Reads and validates a plan for `model`; throws one `SharingPlanError` listing every problem.
    public static func load(path: String, model: LoadedModel) throws -> SharingPlan {
        guard let data = try FileCheck.contentsIfPresent(path, "plan") else {
            throw SharingPlanError(source: path, problems: [PlanProblem(layer: nil, "the file does not exist")])
        }
        var plan = try decode(data, source: path)
        try plan.validate(against: ModelIdentity.of(model), source: path)
        if let section = plan.lisa {
            let adapter = section.adapter.hasPrefix("/") ? section.adapter
                : URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent(section.adapter).path
            plan.lisaParameters = try LiSAAdapter.read(path: adapter, expectedHash: section.adapterHash, layers: section.layers, hyper: model.hyper)
        }
        return plan
    }

    /// Parses a plan's JSON, unchecked (`validate` checks it); `source` names it in errors.
    public static func decode(_ data: Data, source: String) throws -> SharingPlan {
        do {
            return try JSONDecoder().decode(SharingPlan.self, from: data)
        } catch {
            throw SharingPlanError(source: source, problems: [PlanProblem(layer: nil, "malformed JSON: " + describeDecodingError(error, data: data))])
        }
    }

    /// Throws one `SharingPlanError` listing every way the plan does not fit the model `identity`.
    public func validate(against identity: ModelIdentity, source: String) throws {
        let problems = model.mismatches(against: identity).map { PlanProblem(layer: nil, $0) }
            + structuralProblems(layerCount: identity.layers)
        guard problems.isEmpty else { throw SharingPlanError(source: source, problems: problems) }
    }

    public func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try (encoder.encode(self) + Data("\n".utf8)).write(to: URL(fileURLWithPath: path))
    }

    /// Spans of the SA section (empty when absent).
    public var spans: [Span] { sharedAttention?.spans ?? [] }

    /// K-cache bytes per token no longer stored (float32 K rows of every shared layer).
    public func kvBytesSavedPerToken() -> Int {
        spans.reduce(0) { $0 + ($1.last - $1.first + 1) } * model.kvHeads * model.headDim * 4
    }

    /// One line per span plus the saving, then head sharing, for the CLI. With `weights` (the model the
    /// plan was loaded for) head sharing's weight bytes saved are included.
    public func summary(weights: WeightSource? = nil) -> String {
        guard !spans.isEmpty || !sharedUnits.isEmpty || lisa != nil else { return "no shared layers (every layer standard)" }
        var lines = spans.map { "layers \($0.first)-\($0.last) reuse the attention probabilities of layer \($0.source)" }
        if !spans.isEmpty {
            let shared = spans.reduce(0) { $0 + ($1.last - $1.first + 1) }
            lines.append("\(shared) of \(model.layers) layers shared; K cache saved: \(kvBytesSavedPerToken()) bytes per token "
                         + "(\(shared) × \(model.kvHeads) kv heads × \(model.headDim) × 4 bytes)")
        }
        return (lines + headShareSummaryLines(weights: weights) + lisaSummaryLines).joined(separator: "\n")
    }
}

/// Mode names used in the JSON.
enum MethodName {
    static let headShare = "headShare"
}

enum LayerModeName {
    static let standard = "standard"
    static let sharedAttention = "sharedAttention"
    static let lisa = "lisa"
    static let known: Set<String> = [standard, sharedAttention, lisa]
}

/// Where a JSON decoding error happened, in words (`layers[3].mode: expected String`).
/// Syntax errors are located by line and column (JSONDecoder on Linux does not say where).
func describeDecodingError(_ error: Error, data: Data? = nil) -> String {
    func path(_ keys: [CodingKey]) -> String {
        let p = keys.reduce("") { acc, k in
            if let i = k.intValue { return acc + "[\(i)]" }
            return acc.isEmpty ? k.stringValue : acc + "." + k.stringValue
        }
        return p.isEmpty ? "top level" : p
    }
    guard let e = error as? DecodingError else { return "\(error)" }
    switch e {
    case let .dataCorrupted(ctx):
        if ctx.codingPath.isEmpty, let data, let location = jsonSyntaxErrorLocation(data) { return location }
        let underlying = (ctx.underlyingError as NSError?).map { " (\($0.localizedDescription) \($0.userInfo["NSDebugDescription"] ?? ""))" } ?? ""
        return "\(path(ctx.codingPath)): \(ctx.debugDescription)\(underlying)"
    case let .keyNotFound(key, ctx):
        return "\(path(ctx.codingPath + [key])): required key '\(key.stringValue)' is missing"
    case let .typeMismatch(type, ctx):
        return "\(path(ctx.codingPath)): expected \(type) — \(ctx.debugDescription)"
    case let .valueNotFound(type, ctx):
        return "\(path(ctx.codingPath)): expected \(type) but found null"
    @unknown default:
        return "\(e)"
    }
}

/// "syntax error at line L, column C: ..." from JSONSerialization's "around character N" message.
func jsonSyntaxErrorLocation(_ data: Data) -> String? {
    do {
        _ = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        return nil
    } catch {
        let message = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? "\(error)"
        guard let range = message.range(of: #"character (\d+)"#, options: .regularExpression),
              let offset = Int(message[range].dropFirst("character ".count)) else { return "syntax error: \(message)" }
        // JSONSerialization counts bytes from 0.
        var line = 1, column = 1
        for byte in data.prefix(offset) {
            if byte == UInt8(ascii: "\n") { line += 1; column = 1 } else { column += 1 }
        }
        return "syntax error at line \(line), column \(column): \(message)"
    }
}
