import Foundation

extension BenchReport {
    /// Decode tok/s against context length (log scale), one line per plan; each point is the median
    /// with a capped min–max bar. The y axis has round ticks (`AxisTicks`) and every label is printed
    /// exactly at its gridline's height. Elements carry classes (`grid`, `ytick`, `point`, `range`)
    /// so tests and scripts can read the plot back.
    public static func svg(_ results: [BenchResult], title: String) -> String {
        let width = 820.0, height = 440.0, left = 70.0, right = 280.0, top = 40.0, bottom = 60.0
        let plans = results.map(\.plan).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        let contexts = Array(Set(results.map(\.context))).sorted()
        let ticks = AxisTicks(maximum: (results.map(\.decodeMax).filter(\.isFinite).max() ?? 1) * 1.05)
        let plotW = width - left - right, plotH = height - top - bottom
        func x(_ c: Int) -> Double {
            guard contexts.count > 1, let lo = contexts.first, let hi = contexts.last else { return left + plotW / 2 }
            return left + plotW * (log2(Double(c)) - log2(Double(lo))) / (log2(Double(hi)) - log2(Double(lo)))
        }
        func y(_ v: Double) -> Double { top + plotH * (1 - v / ticks.top) }
        func f(_ v: Double) -> String { String(format: "%.2f", v) }
        let colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text x=\"\(width / 2)\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">\(escape(title))</text>\n"
        for v in ticks.values {
            s += "<line class=\"grid\" x1=\"\(f(left - 5))\" y1=\"\(f(y(v)))\" x2=\"\(f(left + plotW))\" y2=\"\(f(y(v)))\" stroke=\"#ddd\"/>"
            // The baseline 4 px below the gridline centres 12 px digits on it (renderers differ on dominant-baseline).
            s += "<text class=\"ytick\" x=\"\(f(left - 8))\" y=\"\(f(y(v) + 4))\" text-anchor=\"end\">\(ticks.label(v))</text>\n"
        }
        s += "<line x1=\"\(left)\" y1=\"\(top + plotH)\" x2=\"\(left + plotW)\" y2=\"\(top + plotH)\" stroke=\"black\"/>\n"
        s += "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(top + plotH)\" stroke=\"black\"/>\n"
        for c in contexts {
            s += "<line x1=\"\(f(x(c)))\" y1=\"\(top + plotH)\" x2=\"\(f(x(c)))\" y2=\"\(top + plotH + 5)\" stroke=\"black\"/>"
            s += "<text class=\"xtick\" x=\"\(f(x(c)))\" y=\"\(top + plotH + 20)\" text-anchor=\"middle\">\(c)</text>\n"
        }
        s += "<text x=\"\(left + plotW / 2)\" y=\"\(height - 15)\" text-anchor=\"middle\">context length (tokens, log scale)</text>\n"
        s += "<text transform=\"translate(18,\(top + plotH / 2)) rotate(-90)\" text-anchor=\"middle\">decode tokens/s (median, bars: min–max of runs)</text>\n"
        for (i, plan) in plans.enumerated() {
            let color = colors[i % colors.count]
            let points = results.filter { $0.plan == plan }.sorted { $0.context < $1.context }
            let path = points.map { "\(f(x($0.context))),\(f(y($0.decodeTokensPerSecond)))" }.joined(separator: " ")
            s += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"/>\n"
            for p in points {
                let px = x(p.context), cap = 5.0
                s += "<g class=\"range\" stroke=\"\(color)\" stroke-width=\"1.5\">"
                s += "<line x1=\"\(f(px))\" y1=\"\(f(y(p.decodeMin)))\" x2=\"\(f(px))\" y2=\"\(f(y(p.decodeMax)))\"/>"
                for v in [p.decodeMin, p.decodeMax] {
                    s += "<line x1=\"\(f(px - cap))\" y1=\"\(f(y(v)))\" x2=\"\(f(px + cap))\" y2=\"\(f(y(v)))\"/>"
                }
                s += "</g>"
                s += "<circle class=\"point\" cx=\"\(f(px))\" cy=\"\(f(y(p.decodeTokensPerSecond)))\" r=\"3\" fill=\"\(color)\"/>\n"
            }
            let ly = top + 10 + Double(i) * 20
            s += "<line x1=\"\(left + plotW + 15)\" y1=\"\(ly)\" x2=\"\(left + plotW + 35)\" y2=\"\(ly)\" stroke=\"\(color)\" stroke-width=\"2\"/>"
            s += "<text x=\"\(left + plotW + 40)\" y=\"\(ly + 4)\">\(escape(plan))</text>\n"
        }
        return s + "</svg>\n"
    }
}
