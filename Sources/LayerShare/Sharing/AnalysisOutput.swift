import Foundation

extension AttentionSimilarity {
    /// Writes similarity.json and the cosine and JSD heatmaps (SVG + PNG) into `directory`; returns the paths.
    @discardableResult
    public func writeOutputs(to directory: String) throws -> [String] {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        func path(_ name: String) -> String { URL(fileURLWithPath: directory).appendingPathComponent(name).path }
        let model = self.model.file ?? "model"
        let detail = "\(model), \(settings.sequences) x \(settings.tokensPerSequence) tokens"
        let maps = [
            ("similarity-cosine", Heatmap(title: "Attention map cosine similarity", subtitle: detail,
                                          colorbarLabel: "cosine", matrix: cosine)),
            ("similarity-jsd", Heatmap(title: "Attention Jensen-Shannon divergence", subtitle: detail + ", nats",
                                       colorbarLabel: "JSD (nats)", matrix: jensenShannon, low: 0)),
        ]
        var written = [path("similarity.json")]
        try write(to: written[0])
        for (name, map) in maps {
            try map.svg().write(toFile: path(name + ".svg"), atomically: true, encoding: .utf8)
            try map.png().write(to: URL(fileURLWithPath: path(name + ".png")))
            written += [path(name + ".svg"), path(name + ".png")]
        }
        return written
    }
}
