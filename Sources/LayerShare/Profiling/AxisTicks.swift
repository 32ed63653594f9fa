import Foundation

/// Evenly spaced "round" tick values for a linear axis from 0: a step of 1, 2, 2.5 or 5 times a power
/// of ten, so every label can be printed exactly and sits on its gridline.
public struct AxisTicks: Equatable {
    public let step: Double
    public let count: Int  // intervals; ticks are 0, step, …, count·step
    public let decimals: Int

    /// Ticks covering 0…`maximum`: the finest round step that needs at most `target + 2` intervals.
    public init(maximum: Double, target: Int = 5) {
        let top = maximum.isFinite && maximum > 0 ? maximum : 1
        let magnitude = pow(10, floor(log10(top / Double(max(1, target)))))
        let steps = [0.1, 0.2, 0.25, 0.5, 1, 2, 2.5, 5, 10].map { $0 * magnitude }
        func intervals(_ step: Double) -> Int { max(1, Int((top / step * (1 - 1e-12)).rounded(.up))) }
        step = steps.first { intervals($0) <= max(1, target) + 2 } ?? 10 * magnitude
        count = intervals(step)
        let factor = step / pow(10, floor(log10(step) + 1e-9))
        // Digits after the point that the step needs (2.5 × 10^k needs one more than 10^k).
        let exponent = Int(floor(log10(step) + 1e-9))
        decimals = max(0, -exponent + (abs(factor - 2.5) < 1e-9 ? 1 : 0))
    }

    public var values: [Double] { (0...count).map { Double($0) * step } }
    public var top: Double { Double(count) * step }

    public func label(_ value: Double) -> String { String(format: "%.\(decimals)f", value) }
}
