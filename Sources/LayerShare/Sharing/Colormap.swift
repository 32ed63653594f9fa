import Foundation

/// Viridis (perceptually uniform, colour-blind safe), linearly interpolated between 9 samples.
enum Colormap {
    static let viridis: [(Double, Double, Double)] = [
        (68, 1, 84), (71, 44, 122), (59, 81, 139), (44, 113, 142), (33, 144, 141),
        (39, 173, 129), (92, 200, 99), (170, 220, 50), (253, 231, 37),
    ]

    /// Colour of `t` in [0, 1] (clamped; NaN is drawn grey).
    static func color(_ t: Double) -> RGB {
        guard t.isFinite else { return .gray }
        let x = min(1, max(0, t)) * Double(viridis.count - 1)
        let i = min(Int(x), viridis.count - 2)
        let f = x - Double(i)
        let a = viridis[i], b = viridis[i + 1]
        func mix(_ u: Double, _ v: Double) -> UInt8 { UInt8((u + (v - u) * f).rounded()) }
        return RGB(r: mix(a.0, b.0), g: mix(a.1, b.1), b: mix(a.2, b.2))
    }
}
