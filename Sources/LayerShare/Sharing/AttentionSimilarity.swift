import Foundation

/// Result of `AttentionAnalysis`: everything `similarity.json` holds.
public struct AttentionSimilarity: Codable, Sendable {
    public struct Settings: Codable, Sendable {
        public var file: String
        public var tokensPerSequence: Int
        public var sequences: Int
        /// Calibration tokens used: [0, tokensUsed) of the file's tokenization; held-out text starts after.
        public var tokensUsed: Int
        public var jensenShannonUnit = "nats (natural log; 0 = identical, ln 2 ≈ 0.693 = disjoint)"
        public var cosineDefinition = "per head: cosine of the flattened causal attention maps (lower triangle incl. diagonal); averaged over heads, then sequences"
        public var jensenShannonDefinition = "per head and query row: JSD between the two layers' distributions over keys; averaged over rows, heads, sequences"
    }

    /// Head `head` of `layer`: its best-matching head of layer − 1 (may repeat across heads), and the
    /// best one-to-one pairing of the two layers' heads (a permutation).
    public struct HeadMatch: Codable, Sendable {
        public var layer: Int
        public var bestPreviousHead: [Int]
        public var bestCosine: [Double]
        public var permutation: [Int]
        public var permutationCosine: [Double]
    }

    public var model: ModelIdentity
    public var settings: Settings
    /// [i][j] layer × layer cosine, symmetric, 1 on the diagonal.
    public var cosine: [[Double]]
    /// [i][j] Jensen–Shannon divergence in nats, symmetric, 0 on the diagonal.
    public var jensenShannon: [[Double]]
    /// [head][i][j] cosine per head.
    public var cosineByHead: [[[Double]]]
    /// [l − 1][a][b]: head a of layer l against head b of layer l − 1.
    public var adjacentHeadCosine: [[[Double]]]
    /// For layers 1..<L.
    public var headMatches: [HeadMatch]

    public var layers: Int { cosine.count }

    public static func load(path: String) throws -> AttentionSimilarity {
        guard let data = try FileCheck.contentsIfPresent(path, "analysis") else { throw ModelLoadError("analysis \(path) does not exist") }
        return try decode(data, source: path)
    }

    /// Parses the contents of a `similarity.json`; `source` names it in errors.
    public static func decode(_ data: Data, source: String) throws -> AttentionSimilarity {
        let similarity: AttentionSimilarity
        do {
            similarity = try JSONDecoder().decode(AttentionSimilarity.self, from: data)
        } catch {
            throw ModelLoadError("\(source) is not an analysis file: \(describeDecodingError(error, data: data))")
        }
        if let problem = similarity.shapeProblem { throw ModelLoadError("\(source) is not an analysis file: \(problem)") }
        return similarity
    }

    /// What the span search and summaries would index out of range on: both layer × layer
    /// matrices square and of one size, a non-negative token count to skip.
    var shapeProblem: String? {
        let n = cosine.count
        for (name, m) in [("cosine", cosine), ("jensenShannon", jensenShannon)] {
            if m.count != n { return "\(name) has \(m.count) rows, cosine has \(n)" }
            if let i = m.firstIndex(where: { $0.count != n }) { return "\(name)[\(i)] has \(m[i].count) entries for \(n) layers" }
        }
        if settings.tokensUsed < 0 { return "settings.tokensUsed is \(settings.tokensUsed)" }
        return nil
    }

    public func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        try encoder.encode(self).write(to: URL(fileURLWithPath: path))
    }
}
