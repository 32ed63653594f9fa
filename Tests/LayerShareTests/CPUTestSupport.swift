import Foundation
import XCTest
import LayerShare

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
