import Foundation

extension Heatmap {
    /// Standalone SVG: one rect per cell, tick labels, axis titles, a colour bar with values.
    public func svg() -> String {
        var s = """
        <?xml version="1.0" encoding="UTF-8"?>
        <svg xmlns="http://www.w3.org/2000/svg" width="\(width)" height="\(height)" viewBox="0 0 \(width) \(height)" font-family="sans-serif">
        <rect x="0" y="0" width="\(width)" height="\(height)" fill="#ffffff"/>
        <text x="\(plotX)" y="20" font-size="14" font-weight="bold">\(escape(title))</text>
        <text x="\(plotX)" y="36" font-size="10" fill="#444444">\(escape(subtitle))</text>

        """
        for i in 0..<n {
            for j in 0..<n {
                let v = matrix[i][j]
                s += "<rect x=\"\(plotX + j * cell)\" y=\"\(plotY + i * cell)\" width=\"\(cell)\" height=\"\(cell)\" fill=\"\(color(v).hex)\"><title>\(axisLabel) \(i) vs \(j): \(String(format: "%.4f", v))</title></rect>\n"
            }
        }
        s += "<rect x=\"\(plotX)\" y=\"\(plotY)\" width=\"\(plotSize)\" height=\"\(plotSize)\" fill=\"none\" stroke=\"#000000\"/>\n"
        for t in ticks {
            let c = t * cell + cell / 2
            s += "<text x=\"\(plotX + c)\" y=\"\(plotY + plotSize + 14)\" font-size=\"10\" text-anchor=\"middle\">\(t)</text>\n"
            s += "<text x=\"\(plotX - 4)\" y=\"\(plotY + c + 3)\" font-size=\"10\" text-anchor=\"end\">\(t)</text>\n"
        }
        s += "<text x=\"\(plotX + plotSize / 2)\" y=\"\(plotY + plotSize + 32)\" font-size=\"12\" text-anchor=\"middle\">\(escape(axisLabel)) index</text>\n"
        s += "<text transform=\"translate(18 \(plotY + plotSize / 2)) rotate(-90)\" font-size=\"12\" text-anchor=\"middle\">\(escape(axisLabel)) index</text>\n"
        // Colour bar: thin slices from high (top) to low (bottom).
        let slices = 64
        for k in 0..<slices {
            let y0 = plotY + plotSize * k / slices, y1 = plotY + plotSize * (k + 1) / slices
            let v = high - (high - low) * (Double(k) + 0.5) / Double(slices)
            s += "<rect x=\"\(barX)\" y=\"\(y0)\" width=\"\(barWidth)\" height=\"\(y1 - y0)\" fill=\"\(color(v).hex)\"/>\n"
        }
        s += "<rect x=\"\(barX)\" y=\"\(plotY)\" width=\"\(barWidth)\" height=\"\(plotSize)\" fill=\"none\" stroke=\"#000000\"/>\n"
        for (v, y) in barTicks {
            s += "<line x1=\"\(barX + barWidth)\" y1=\"\(y)\" x2=\"\(barX + barWidth + 4)\" y2=\"\(y)\" stroke=\"#000000\"/>"
            s += "<text x=\"\(barX + barWidth + 6)\" y=\"\(y + 3)\" font-size=\"10\">\(Heatmap.format(v))</text>\n"
        }
        s += "<text x=\"\(barX)\" y=\"\(plotY - 6)\" font-size=\"10\">\(escape(colorbarLabel))</text>\n"
        s += "</svg>\n"
        return s
    }

    func escape(_ t: String) -> String {
        t.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
