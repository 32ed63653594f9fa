import Foundation

/// An 8-bit RGB raster with the few drawing operations a heatmap needs.
struct RGBImage {
    let width: Int
    let height: Int
    var pixels: [UInt8]

    init(width: Int, height: Int, background: RGB = .white) {
        self.width = width
        self.height = height
        pixels = [UInt8](repeating: 0, count: width * height * 3)
        fill(x: 0, y: 0, w: width, h: height, background)
    }

    mutating func fill(x: Int, y: Int, w: Int, h: Int, _ c: RGB) {
        for yy in max(0, y)..<min(height, y + h) {
            for xx in max(0, x)..<min(width, x + w) {
                let i = (yy * width + xx) * 3
                pixels[i] = c.r; pixels[i + 1] = c.g; pixels[i + 2] = c.b
            }
        }
    }

    mutating func frame(x: Int, y: Int, w: Int, h: Int, _ c: RGB) {
        fill(x: x, y: y, w: w, h: 1, c); fill(x: x, y: y + h - 1, w: w, h: 1, c)
        fill(x: x, y: y, w: 1, h: h, c); fill(x: x + w - 1, y: y, w: 1, h: h, c)
    }

    /// Pixel size of `text` at `scale` (glyph 5 wide plus 1 spacing).
    static func textWidth(_ text: String, scale: Int) -> Int { max(0, text.count * 6 * scale - scale) }

    /// Draws text with its top-left at (x, y) (descenders reach `BitmapFont.height` rows down); `vertical` runs it bottom-to-top (rotated 90° left) from (x, y) = bottom-left.
    mutating func text(_ text: String, x: Int, y: Int, scale: Int = 1, vertical: Bool = false, _ c: RGB = .black) {
        var pen = 0
        for ch in text {
            for (row, bits) in BitmapFont.rows(ch).enumerated() {
                for col in 0..<BitmapFont.width where bits & (1 << (BitmapFont.width - 1 - col)) != 0 {
                    let gx = pen + col * scale, gy = row * scale
                    if vertical {
                        fill(x: x + gy, y: y - gx - scale, w: scale, h: scale, c)
                    } else {
                        fill(x: x + gx, y: y + gy, w: scale, h: scale, c)
                    }
                }
            }
            pen += 6 * scale
        }
    }
}

struct RGB: Equatable {
    var r: UInt8, g: UInt8, b: UInt8
    static let white = RGB(r: 255, g: 255, b: 255)
    static let black = RGB(r: 0, g: 0, b: 0)
    static let gray = RGB(r: 110, g: 110, b: 110)
    var hex: String { String(format: "#%02x%02x%02x", r, g, b) }
}
