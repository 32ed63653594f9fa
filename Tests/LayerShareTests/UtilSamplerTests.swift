import Foundation
import XCTest
@testable import LayerShare

final class UtilSamplerTests: XCTestCase {
    /// Outputs of xoshiro256** seeded through SplitMix64, from an independent Python transcription
    /// of the reference algorithms: the stream must not change between runs or releases.
    func testGeneratorIsPinned() {
        var zero = Xoshiro256StarStar(seed: 0)
        XCTAssertEqual((0..<3).map { _ in zero.next() }, [0x99ec5f36cb75f2b4, 0xbf6e1f784956452a, 0x1a5f849d4933e6e0])
        var fortyTwo = Xoshiro256StarStar(seed: 42)
        XCTAssertEqual((0..<3).map { _ in fortyTwo.next() }, [0x15780b2e0c2ec716, 0x6104d9866d113a7e, 0xae17533239e499a1])
    }

    func testGreedyIsArgmaxWithLowestIndexOnTies() throws {
        var random = TestRandom(#function)
        var greedy = try Sampler(temperature: 0, topK: 5, topP: 0.5, seed: 1)  // top-k/p ignored when greedy
        for _ in 0..<20 {
            let logits = random.floats(1000, -10, 10)
            XCTAssertEqual(greedy.sample(logits: logits), logits.indices.max { logits[$0] < logits[$1] })
        }
        XCTAssertEqual(greedy.sample(logits: [1, 5, 5, 2]), 1)
        XCTAssertEqual(greedy.sample(logits: [.nan, 3, .nan, 4]), 3)
        XCTAssertEqual(greedy.sample(logits: [-.infinity, -.infinity]), 0)
    }

    func testFixedSeedReproduces() throws {
        var random = TestRandom(#function)
        let rows = (0..<200).map { _ in random.floats(500, -5, 5) }
        func draws(seed: UInt64) throws -> [Int] {
            var sampler = try Sampler(temperature: 0.8, topK: 40, topP: 0.9, seed: seed)
            return rows.map { sampler.sample(logits: $0) }
        }
        XCTAssertEqual(try draws(seed: 7), try draws(seed: 7))
        XCTAssertNotEqual(try draws(seed: 7), try draws(seed: 8))
    }

    func testTopKOneAndTinyTopPAreGreedy() throws {
        var random = TestRandom(#function)
        var topK1 = try Sampler(temperature: 1.5, topK: 1, seed: random.seed)
        var tinyP = try Sampler(temperature: 1.5, topP: 1e-6, seed: random.seed)
        for _ in 0..<100 {
            var logits = random.floats(300, -3, 3)
            logits[random.int(0..<300)] = 3.5  // a clear winner …
            logits[0] = logits.max()!          // … that index 0 ties: the lower index wins
            XCTAssertEqual(topK1.sample(logits: logits), 0)
            XCTAssertEqual(tinyP.sample(logits: logits), 0)
        }
    }

    /// Chi-square goodness of fit of `draws` samples. The seed is fixed so the test is
    /// deterministic; the threshold (≈ the 1e-6 tail for ≤ 3 degrees of freedom) is loose enough
    /// that a correct sampler passes for essentially any seed, while a wrong distribution
    /// (e.g. off by 0.02 in one probability over 40000 draws gives χ² ≈ 100) fails.
    private func assertDistribution(_ sampler: inout Sampler, logits: [Float], expected: [Double], draws: Int = 40000,
                                    file: StaticString = #filePath, line: UInt = #line) {
        var counts = [Int](repeating: 0, count: logits.count)
        for _ in 0..<draws { counts[sampler.sample(logits: logits)] += 1 }
        var chiSquare = 0.0
        for (i, p) in expected.enumerated() {
            if p == 0 {
                XCTAssertEqual(counts[i], 0, "token \(i) should be filtered out", file: file, line: line)
            } else {
                let e = p * Double(draws)
                chiSquare += (Double(counts[i]) - e) * (Double(counts[i]) - e) / e
            }
        }
        XCTAssertLessThan(chiSquare, 31, "counts \(counts) vs probabilities \(expected)", file: file, line: line)
    }

    func testDistributions() throws {
        let p: [Double] = [0.1, 0.2, 0.3, 0.4]
        let logits = p.map { Float(log($0)) + 2 }  // a shift must not matter

        var plain = try Sampler(temperature: 1, seed: 12345)
        assertDistribution(&plain, logits: logits, expected: p)

        // Temperature 2 takes the square root of the probabilities before renormalizing.
        var hot = try Sampler(temperature: 2, seed: 12346)
        let roots = p.map { $0.squareRoot() }
        assertDistribution(&hot, logits: logits, expected: roots.map { $0 / roots.reduce(0, +) })

        // Top-2, and top-p 0.5 (0.4 < 0.5 ≤ 0.4 + 0.3) both keep tokens 3 and 2, renormalized.
        var topK = try Sampler(temperature: 1, topK: 2, seed: 12347)
        assertDistribution(&topK, logits: logits, expected: [0, 0, 3.0 / 7, 4.0 / 7])
        var topP = try Sampler(temperature: 1, topP: 0.5, seed: 12348)
        assertDistribution(&topP, logits: logits, expected: [0, 0, 3.0 / 7, 4.0 / 7])

        // Top-k first, then top-p on the renormalized top-k: top-3 gives (1/6, 2/6, 3/6)·…; p 0.6
        // needs 0.5 + 1/3 → tokens 3 and 2.
        var both = try Sampler(temperature: 1, topK: 3, topP: 0.6, seed: 12349)
        assertDistribution(&both, logits: logits, expected: [0, 0, 3.0 / 7, 4.0 / 7])
    }

    /// Top-p alone over a heavy tail: one token of weight 1 and 4000 tied tokens of weight
    /// 2.5e-4 (total 2). The nucleus for p = 0.95 needs 1.9, i.e. token 0 and the first 3600 tail
    /// tokens (ties rank by lower index), so the sampler must look below its first cut-off (1e-3).
    func testTopPOverAHeavyTail() throws {
        var logits = [Float](repeating: Float(log(2.5e-4)), count: 4001)
        logits[0] = 0
        var sampler = try Sampler(temperature: 1, topP: 0.95, seed: 99)
        let draws = (0..<300).map { _ in sampler.sample(logits: logits) }
        XCTAssertLessThanOrEqual(draws.max()!, 3601, "tokens outside the nucleus were drawn")
        // p(token 0) = 1/1.9 ≈ 0.53 (σ ≈ 0.03 over 300 draws); the tail is uniform over 1...3600
        // (mean 1800.5, σ of the mean ≈ 90). Bounds are 5σ.
        let zeroFraction = Double(draws.filter { $0 == 0 }.count) / 300
        XCTAssertEqual(zeroFraction, 1 / 1.9, accuracy: 0.15)
        let tail = draws.filter { $0 != 0 }
        XCTAssertEqual(Double(tail.reduce(0, +)) / Double(tail.count), 1800.5, accuracy: 450)
        XCTAssertGreaterThan(draws.max()!, 3000, "the far part of the nucleus was never reached")
    }

    func testNaNLogitsAreNeverDrawn() throws {
        var sampler = try Sampler(temperature: 1, seed: 3)
        for _ in 0..<1000 { XCTAssertNotEqual(sampler.sample(logits: [0, .nan, 0.5]), 1) }
    }

    func testInvalidParametersThrow() {
        XCTAssertThrowsError(try Sampler(temperature: -0.1)) { XCTAssertEqual($0 as? SamplerError, .invalidTemperature(-0.1)) }
        XCTAssertThrowsError(try Sampler(temperature: .infinity))
        XCTAssertThrowsError(try Sampler(temperature: .nan))
        XCTAssertThrowsError(try Sampler(topK: -1)) { XCTAssertEqual($0 as? SamplerError, .invalidTopK(-1)) }
        XCTAssertThrowsError(try Sampler(topP: 0)) { XCTAssertEqual($0 as? SamplerError, .invalidTopP(0)) }
        XCTAssertThrowsError(try Sampler(topP: 1.01))
        XCTAssertThrowsError(try Sampler(topP: .nan))
        XCTAssertNoThrow(try Sampler(temperature: 0, topK: 0, topP: 1))
        XCTAssertTrue("\(SamplerError.invalidTopP(2))".contains("(0, 1]"))
    }

    /// Probabilities (temperature 1) 1 : 0.5 : 0.31 : 0.29 : 0.1 with min-p 0.3 keep tokens 0–2, on
    /// every path of the sampler (no other filter, after top-k, after top-p).
    func testMinPKeepsExactlyTheTokensAboveItsFloor() throws {
        let logits = [1, 0.5, 0.31, 0.29, 0.1].map { Float(log($0)) }
        for (topK, topP) in [(0, Float(1)), (10, 1), (0, 0.9999)] {
            var sampler = try Sampler(temperature: 1, topK: topK, topP: topP, minP: 0.3, seed: 5)
            let drawn = Set((0..<2000).map { _ in sampler.sample(logits: logits) })
            XCTAssertEqual(drawn, [0, 1, 2], "top-k \(topK), top-p \(topP)")
        }
        var strict = try Sampler(temperature: 2, minP: 1, seed: 1)  // only the most likely token
        XCTAssertEqual(Set((0..<200).map { _ in strict.sample(logits: logits) }), [0])
    }

    func testRepeatPenaltyDividesPositiveAndMultipliesNegativeLogits() throws {
        let penalty = try Sampler(repeatPenalty: 2, repeatLastN: 64)
        var logits: [Float] = [2, -2, 3, 1]
        penalty.penalizeRepeats(&logits, history: [0, 1, 0])  // token 0 twice: penalized once
        XCTAssertEqual(logits, [1, -4, 3, 1])
        let lastOne = try Sampler(repeatPenalty: 2, repeatLastN: 1)
        logits = [2, -2, 3, 1]
        lastOne.penalizeRepeats(&logits, history: [0, 1, 7])  // only the latest token counts; 7 is out of range
        XCTAssertEqual(logits, [2, -2, 3, 1])
        lastOne.penalizeRepeats(&logits, history: [0, 2])
        XCTAssertEqual(logits, [2, -2, 1.5, 1])
        let off = try Sampler(repeatPenalty: 1)
        off.penalizeRepeats(&logits, history: [0, 1, 2, 3])
        XCTAssertEqual(logits, [2, -2, 1.5, 1])
    }

    func testInvalidMinPAndRepeatPenaltyThrow() {
        XCTAssertThrowsError(try Sampler(minP: -0.1)) { XCTAssertEqual($0 as? SamplerError, .invalidMinP(-0.1)) }
        XCTAssertThrowsError(try Sampler(minP: .nan))
        XCTAssertThrowsError(try Sampler(repeatPenalty: 0)) { XCTAssertEqual($0 as? SamplerError, .invalidRepeatPenalty(0)) }
        XCTAssertThrowsError(try Sampler(repeatPenalty: .infinity))
        XCTAssertThrowsError(try Sampler(repeatLastN: -1)) { XCTAssertEqual($0 as? SamplerError, .invalidRepeatLastN(-1)) }
    }
}
