import Foundation
import LayerShare

/// Seeded random inputs for the tests. The seed is fresh each run (so repeated runs cover new
/// inputs) and printed; set LAYERSHARE_TEST_SEED to replay a failure.
struct TestRandom {
    let seed: UInt64
    private var generator: Xoshiro256StarStar

    init(_ testName: String) {
        if let text = ProcessInfo.processInfo.environment["LAYERSHARE_TEST_SEED"], let fixed = UInt64(text) {
            seed = fixed
        } else {
            seed = UInt64.random(in: 0...UInt64.max)
        }
        print("\(testName): random seed \(seed) (replay with LAYERSHARE_TEST_SEED=\(seed))")
        generator = Xoshiro256StarStar(seed: seed)
    }

    /// `count` uniform floats in [low, high).
    mutating func floats(_ count: Int, _ low: Float = -1, _ high: Float = 1) -> [Float] {
        (0..<count).map { _ in low + (high - low) * Float(generator.nextUnitDouble()) }
    }

    mutating func int(_ range: Range<Int>) -> Int { Int.random(in: range, using: &generator) }
    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &generator) }
    mutating func unit() -> Double { generator.nextUnitDouble() }
    mutating func byte() -> UInt8 { UInt8.random(in: 0...255, using: &generator) }
    mutating func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in byte() } }
}
