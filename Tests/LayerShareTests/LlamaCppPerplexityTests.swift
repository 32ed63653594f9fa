import Foundation
import XCTest
@testable import LayerShare

/// `ppl --method llama.cpp`: the chunk and score arithmetic, and the whole command against
/// tools/llamacpp_ppl.py, which cuts and scores the chunks itself from `layershare logits`.
final class LlamaCppPerplexityTests: XCTestCase {
    func testChunkCountsAndScoredPositions() throws {
        // 7,639 tokens at 512 (GPL-3): 14 chunks, 255 scored in each (positions 256…510 predict 257…511).
        let gpl = try LlamaCppChunks(tokenCount: 7639, window: 512)
        XCTAssertEqual(gpl.count, 14)
        XCTAssertEqual(gpl.firstScored, 256)
        XCTAssertEqual(gpl.scoredPerChunk, 255)
        XCTAssertEqual(gpl.totalScored, 3570)
        let last = gpl.scored(inChunk: 13)
        XCTAssertEqual(last.count, 255)
        XCTAssertEqual(last.first?.position, 256)
        XCTAssertEqual(last.first?.target, 13 * 512 + 257)
        XCTAssertEqual(last.last?.position, 510)
        XCTAssertEqual(last.last?.target, 14 * 512 - 1)  // the chunk's own last token, never the next chunk's
        XCTAssertEqual(gpl.range(ofChunk: 13), 6656..<7168)

        // Odd window: first = 3, positions 3…5 (7 − 3 − 1 = 3). Exactly two windows is enough.
        let odd = try LlamaCppChunks(tokenCount: 14, window: 7)
        XCTAssertEqual(odd.count, 2)
        XCTAssertEqual(odd.scored(inChunk: 1).map(\.position), [3, 4, 5])
        XCTAssertEqual(odd.scored(inChunk: 1).map(\.target), [11, 12, 13])
        XCTAssertEqual(try LlamaCppChunks(tokenCount: 100, window: 10, maxChunks: 3).count, 3)
        XCTAssertEqual(try LlamaCppChunks(tokenCount: 100, window: 10, maxChunks: 50).count, 10)
    }

    func testBOSReplacesEachChunksFirstToken() throws {
        let tokens = Array(100..<112)
        let plan = try LlamaCppChunks(tokenCount: tokens.count, window: 4)
        XCTAssertEqual(plan.tokens(ofChunk: 1, in: tokens, bos: 1), [1, 105, 106, 107])
        XCTAssertEqual(plan.tokens(ofChunk: 2, in: tokens, bos: nil), [108, 109, 110, 111])
        // The replaced token is never a target: targets start at window/2 + 1.
        XCTAssertEqual(plan.scored(inChunk: 1).map { tokens[$0.target] }, [107])
    }

    func testTooFewTokensAndBadOptionsAreNamed() {
        XCTAssertThrowsError(try LlamaCppChunks(tokenCount: 1023, window: 512)) {
            XCTAssertTrue("\($0)".contains("at least two windows of tokens (2 × 512)") && "\($0)".contains("the text has 1023"), "\($0)")
        }
        XCTAssertThrowsError(try LlamaCppChunks(tokenCount: 100, window: 2)) { XCTAssertTrue("\($0)".contains("at least 3"), "\($0)") }
        XCTAssertThrowsError(try LlamaCppChunks(tokenCount: 100, window: 8, maxChunks: 0)) {
            XCTAssertTrue("\($0)".contains("--chunks must be at least 1"), "\($0)")
        }
        XCTAssertThrowsError(try LlamaCppChunks(tokenCount: Int.max, window: Int.max / 2 + 1))
    }

    func testStandardErrorIsLlamaCppsFormula() {
        var p = Perplexity()
        // NLLs log 3 and log 1.5 (exactly: uniform rows and a two-way row).
        p.add(logits: [0, 0, 0], target: 1)
        p.add(logits: [Float(log(2.0)), 0], target: 0)
        let v = [log(3.0), log(1.5)]
        let mean = (v[0] + v[1]) / 2
        let variance = (v[0] * v[0] + v[1] * v[1]) / 2 - mean * mean
        XCTAssertEqual(p.standardError!, (variance / 1).squareRoot() * exp(mean), accuracy: 1e-9)
        var one = Perplexity()
        one.add(logits: [0, 0], target: 0)
        XCTAssertNil(one.standardError)
    }

    /// Both paths get the same float32 logits (the CPU backend is deterministic); what can differ is
    /// the scoring arithmetic, in float64 on both sides, and the printing (%.6f mean NLL, %.4f per
    /// chunk, %.5f error): so the tolerances are the print precision. An off-by-one in the scored
    /// positions moves the mean NLL by ~0.1 nats here.
    func testMatchesAnIndependentScoringOfTheLogits() throws {
        try checkAgainstScript(model: SharedModel.path, expectBOS: false)
    }

    /// The same with add_bos_token set in a copy of the model: BOS in front and in each chunk's first position.
    func testMatchesWithBOSAdded() throws {
        let copy = try ModelCopies.withMetadata("tokenizer.ggml.add_bos_token", bool: true, test: self)
        try checkAgainstScript(model: copy.path, expectBOS: true)
    }

    private func checkAgainstScript(model path: String, expectBOS: Bool) throws {
        let dir = try ModelCopies.temporaryDirectory(self)
        let text = dir.appendingPathComponent("text.txt")
        // GPL-3's first 700 bytes: 150 tokens, 4 chunks of 32 and a tail of 22 (23 with BOS) left out.
        let gpl = try String(contentsOfFile: "/usr/share/common-licenses/GPL-3", encoding: .utf8)
        try String(decoding: Array(gpl.utf8.prefix(700)), as: UTF8.self).write(to: text, atomically: true, encoding: .utf8)
        let ids = try SharedModel.model().tokenizer.encode(String(contentsOf: text, encoding: .utf8), parseSpecial: false)
        let idsFile = dir.appendingPathComponent("ids.txt")
        try ids.map(String.init).joined(separator: ",").write(to: idsFile, atomically: true, encoding: .utf8)

        let r = try CLIProcess.run(["ppl", "--method", "llama.cpp", "--backend", "cpu", "--model", path, "--file", text.path, "--window", "32"],
                                   timeout: 120)
        XCTAssertEqual(r.status, 0, r.all)
        let json = try runTool("llamacpp_ppl.py", ["--layershare", CLIProcess.executable.path, "--model", path,
                                                   "--tokens-file", idsFile.path, "--window", "32"])
        let expected = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        XCTAssertEqual(expected["bos"] is NSNull, !expectBOS, json)
        let chunks = try XCTUnwrap(expected["chunks"] as? Int), count = try XCTUnwrap(expected["count"] as? Int)
        XCTAssertEqual(chunks, 4)
        XCTAssertEqual(count, 4 * 15)
        XCTAssertTrue(r.stdout.contains("(\(count) tokens scored in \(chunks) chunks of 32, mean NLL "), r.stdout)
        XCTAssertTrue(r.stderr.contains(expectBOS ? "BOS first in each chunk" : "BOS not added"), r.stderr)

        let meanNLL = try XCTUnwrap(number(after: "mean NLL ", in: r.stdout))
        XCTAssertEqual(meanNLL, try XCTUnwrap(expected["meanNLL"] as? Double), accuracy: 2e-6)
        let ppl = try XCTUnwrap(number(after: "PPL = ", in: r.stdout)), error = try XCTUnwrap(number(after: "+/- ", in: r.stdout))
        XCTAssertEqual(ppl, try XCTUnwrap(expected["ppl"] as? Double), accuracy: 1e-4)
        XCTAssertEqual(error, try XCTUnwrap(expected["stderr"] as? Double), accuracy: 1e-5)
        // Progress: one [chunk]ppl per chunk, the last one the final value.
        let running = try XCTUnwrap(expected["running"] as? [Double])
        for (i, value) in running.enumerated() {
            let shown = try XCTUnwrap(number(after: "[\(i + 1)]", in: r.stderr), r.stderr)
            XCTAssertEqual(shown, value, accuracy: 1e-4, "chunk \(i + 1)")
        }
        XCTAssertFalse(r.stderr.contains("[\(chunks + 1)]"), r.stderr)
    }

    func testBadOptionsEndInAClearError() throws {
        let ppl = ["ppl", "--method", "llama.cpp", "--backend", "cpu", "--file", "/usr/share/common-licenses/GPL-3"]
        let cases: [([String], String)] = [
            (ppl + ["--stride", "4"], "--stride applies to --method sliding"),
            (ppl + ["--score-tokens", "64"], "--chunks N scores the first N chunks"),
            (ppl + ["--chunks", "0"], "--chunks must be at least 1, got 0"),
            (ppl + ["--window", "5000", "--ctx", "8192"], "needs at least two windows of tokens (2 × 5000)"),
            (["ppl", "--backend", "cpu", "--file", "/usr/share/common-licenses/GPL-3", "--chunks", "2"], "--chunks applies to --method llama.cpp"),
            (["ppl", "--method", "llama", "--file", "/usr/share/common-licenses/GPL-3"], "llama"),
            (["logits", "--backend", "cpu", "--tokens", "1,x", "--output", "/tmp/never.npy"], "--tokens: \"x\" is not a token id"),
            (["logits", "--backend", "cpu", "--tokens", "1,99999999", "--output", "/tmp/never.npy"], "id 99999999 is outside the vocabulary"),
            (["logits", "--backend", "cpu", "--tokens", "1", "--prompt", "hi", "--output", "/tmp/never.npy"], "exactly one of --prompt and --tokens"),
        ]
        for (arguments, fragment) in cases { assertClearError(try CLIProcess.run(arguments, timeout: 60), [fragment]) }
    }

    private func number(after marker: String, in text: String) -> Double? {
        guard let range = text.range(of: marker) else { return nil }
        return Double(text[range.upperBound...].prefix { $0.isNumber || $0 == "." || $0 == "-" })
    }
}
