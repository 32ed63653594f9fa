import Foundation

/// A square layer × layer matrix to draw, with the geometry both the SVG and the PNG use:
/// row i (top to bottom) and column j (left to right) are layers, a colour bar on the right.
public struct Heatmap {
    public var title: String
    public var subtitle: String
    public var axisLabel: String
    public var colorbarLabel: String
    public var matrix: [[Double]]
    /// Values mapped to the ends of the colour scale.
    public var low: Double
    public var high: Double

    public init(title: String, subtitle: String, axisLabel: String = "layer", colorbarLabel: String, matrix: [[Double]],
                low: Double? = nil, high: Double? = nil) {
        self.title = title
        self.subtitle = subtitle
        self.axisLabel = axisLabel
        self.colorbarLabel = colorbarLabel
        self.matrix = matrix
        let finite = matrix.joined().filter(\.isFinite)
        var lo = low ?? finite.min() ?? 0
        var hi = high ?? finite.max() ?? 1
        if hi <= lo { hi = lo + 1e-6; lo -= 1e-6 }
        self.low = lo
        self.high = hi
    }

    var n: Int { matrix.count }

    // Geometry in pixels.
    var cell: Int { max(4, min(16, 360 / max(n, 1))) }
    var plotX: Int { 56 }
    var plotY: Int { 50 }
    var plotSize: Int { cell * n }
    var barX: Int { plotX + plotSize + 22 }
    var barWidth: Int { 16 }
    var width: Int { barX + barWidth + 70 }
    var height: Int { plotY + plotSize + 48 }

    func color(_ v: Double) -> RGB { Colormap.color((v - low) / (high - low)) }

    /// Layer indices to label: every `step`th plus the last.
    var ticks: [Int] {
        let step = n <= 12 ? 1 : n <= 40 ? 5 : 10
        var t = Array(stride(from: 0, to: n, by: step))
        if let last = t.last, last != n - 1 {
            if (n - 1 - last) * cell < 14 { t.removeLast() }
            t.append(n - 1)
        }
        return t
    }

    /// Values to label on the colour bar (5, from high at the top to low at the bottom).
    var barTicks: [(value: Double, y: Int)] {
        (0...4).map { k in
            let f = Double(k) / 4
            return (high - (high - low) * f, plotY + Int((Double(plotSize - 1) * f).rounded()))
        }
    }

    static func format(_ v: Double) -> String {
        abs(v) >= 0.1 || v == 0 ? String(format: "%.2f", v) : String(format: "%.3f", v)
    }
}
