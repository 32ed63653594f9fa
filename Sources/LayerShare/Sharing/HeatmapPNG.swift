import Foundation

extension Heatmap {
    /// The same picture as `svg()`, rasterised with the built-in bitmap font (BitmapFont).
    public func png() throws -> Data {
        var img = RGBImage(width: width, height: height)
        let titleScale = RGBImage.textWidth(title, scale: 2) <= width - plotX ? 2 : 1
        img.text(title, x: plotX, y: 8, scale: titleScale)
        img.text(subtitle, x: plotX, y: 28, scale: 1, .gray)
        for i in 0..<n {
            for j in 0..<n {
                img.fill(x: plotX + j * cell, y: plotY + i * cell, w: cell, h: cell, color(matrix[i][j]))
            }
        }
        img.frame(x: plotX - 1, y: plotY - 1, w: plotSize + 2, h: plotSize + 2, .black)
        for t in ticks {
            let label = String(t)
            let c = t * cell + cell / 2
            img.fill(x: plotX + c, y: plotY + plotSize + 1, w: 1, h: 3, .black)
            img.text(label, x: plotX + c - RGBImage.textWidth(label, scale: 1) / 2, y: plotY + plotSize + 6)
            img.fill(x: plotX - 4, y: plotY + c, w: 3, h: 1, .black)
            img.text(label, x: plotX - 7 - RGBImage.textWidth(label, scale: 1), y: plotY + c - 3)
        }
        let axis = "\(axisLabel) index"
        img.text(axis, x: plotX + (plotSize - RGBImage.textWidth(axis, scale: 1)) / 2, y: plotY + plotSize + 22)
        img.text(axis, x: 14, y: plotY + (plotSize + RGBImage.textWidth(axis, scale: 1)) / 2, vertical: true)
        for y in 0..<plotSize {
            let v = high - (high - low) * (Double(y) + 0.5) / Double(plotSize)
            img.fill(x: barX, y: plotY + y, w: barWidth, h: 1, color(v))
        }
        img.frame(x: barX - 1, y: plotY - 1, w: barWidth + 2, h: plotSize + 2, .black)
        for (v, y) in barTicks {
            img.fill(x: barX + barWidth + 1, y: y, w: 4, h: 1, .black)
            img.text(Heatmap.format(v), x: barX + barWidth + 7, y: y - 3)
        }
        img.text(colorbarLabel, x: barX, y: plotY - 11)
        return try PNGEncoder.encode(width: width, height: height, rgb: img.pixels)
    }
}
