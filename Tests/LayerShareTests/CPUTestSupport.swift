import Foundation
import XCTest
import LayerShare

/// Seeded random inputs for the CPU kernel tests. The seed is fresh each run (so repeated runs
/// cover new inputs) and printed; set LAYERSHARE_TEST_SEED to replay a failure.
struct CPUTestRandom {
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

    mutating func byte() -> UInt8 { UInt8.random(in: 0...255, using: &generator) }
}

/// Asserts |actual − expected| ≤ tolerance(i) for every element, reporting the worst offender.
func assertClose(_ actual: [Float], _ expected: [Double], tolerance: (Int) -> Double,
                 _ what: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.count, expected.count, "\(what): length", file: file, line: line)
    var worst: (index: Int, excess: Double)?
    for i in 0..<min(actual.count, expected.count) {
        let error = abs(Double(actual[i]) - expected[i])
        let allowed = tolerance(i)
        if !(error <= allowed), worst == nil || error / allowed > worst!.excess {
            worst = (i, error / max(allowed, .leastNonzeroMagnitude))
        }
    }
    if let worst {
        XCTFail("\(what): element \(worst.index) is \(actual[worst.index]), expected \(expected[worst.index]) "
                + "(error \(worst.excess)× the tolerance \(tolerance(worst.index)))", file: file, line: line)
    }
}
