import Foundation
import XCTest
@testable import LayerShare

final class UtilPerplexityTests: XCTestCase {
    func testUniformLogitsGiveVocabularySize() {
        for vocabulary in [1, 7, 49152] {
            var perplexity = Perplexity()
            let logits = [Float](repeating: 3.25, count: vocabulary)
            for target in [0, vocabulary / 2, vocabulary - 1] { perplexity.add(logits: logits, target: target) }
            XCTAssertEqual(perplexity.count, 3)
            XCTAssertEqual(perplexity.value, Double(vocabulary), accuracy: 1e-9 * Double(vocabulary))
        }
    }

    func testKnownValue() {
        // p(target) = e^2 / (e^2 + 2) for the first row and 1 / (e^2 + 2) for the second.
        var perplexity = Perplexity()
        perplexity.add(logits: [2, 0, 0], target: 0)
        perplexity.add(logits: [1002, 1000, 1000], target: 1)  // large logits: needs the max shift
        let z = exp(2.0) + 2
        let meanNLL = (-log(exp(2.0) / z) - log(1 / z)) / 2
        XCTAssertEqual(perplexity.meanNegativeLogLikelihood, meanNLL, accuracy: 1e-12)
        XCTAssertEqual(perplexity.value, exp(meanNLL), accuracy: 1e-12)
    }

    func testEmptyIsNaN() {
        XCTAssertTrue(Perplexity().value.isNaN)
    }
}
