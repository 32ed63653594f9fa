import Foundation
@testable import LayerShare
import XCTest

/// Issue 15's readable outputs: the heatmap font (case, 0/O/Q, descenders, no blanks for unknown
/// characters) and `plan sa`'s savings in MiB and its perplexity warning.
final class OutputsTests: XCTestCase {
    private let printable = (0x20...0x7E).map { Character(Unicode.Scalar(UInt8($0))) }

    func testEveryPrintableCharacterHasItsOwnGlyph() {
        var seen: [[UInt8]: Character] = [:]
        for c in printable {
            XCTAssertTrue(BitmapFont.hasGlyph(c), "no glyph for '\(c)'")
            let rows = BitmapFont.rows(c)
            XCTAssertEqual(rows.count, BitmapFont.height)
            XCTAssertTrue(rows.allSatisfy { $0 < 1 << BitmapFont.width }, "'\(c)' wider than 5")
            if c != " " { XCTAssertTrue(rows.contains { $0 != 0 }, "'\(c)' has no ink") }
            if let other = seen[rows] { XCTFail("'\(c)' and '\(other)' look the same") }
            seen[rows] = c
        }
        // Descenders below the baseline, capitals never.
        for c in "gjpqy,;_" { XCTAssertTrue(BitmapFont.rows(c)[BitmapFont.ascent...].contains { $0 != 0 }, "'\(c)'") }
        for c in "ABCQZ0149" { XCTAssertTrue(BitmapFont.rows(c)[BitmapFont.ascent...].allSatisfy { $0 == 0 }, "'\(c)'") }
    }

    func testTextKeepsCaseAndUnknownCharactersAreVisible() {
        func ink(_ text: String) -> [UInt8] {
            var img = RGBImage(width: 40, height: 12)
            img.text(text, x: 1, y: 1)
            return img.pixels
        }
        XCTAssertNotEqual(ink("Q4_1"), ink("04_1"))
        XCTAssertNotEqual(ink("Q4_1"), ink("q4_1"))
        XCTAssertNotEqual(ink("O"), ink("0"))
        XCTAssertNotEqual(ink("\u{2603}"), ink(" "), "an unknown character must not vanish")
        // The underscore lies below the baseline row of the digits, where nothing else of "Q4_1" is.
        var img = RGBImage(width: 40, height: 12)
        img.text("Q4_1", x: 0, y: 0)
        let underRow = BitmapFont.ascent
        let inkUnder = (0..<24).filter { img.pixels[(underRow * 40 + $0) * 3] == 0 }
        XCTAssertEqual(inkUnder, Array(12..<17), "only the underscore (third glyph) reaches below the baseline")
    }

    func testPlanSavingsAndPerplexityWarning() throws {
        let model = try SharedModel.model()
        let h = model.hyper
        let plan = try SharingPlan.sharedAttention(spans: [14...16, 23...26], model: model)
        XCTAssertEqual(plan.sharedLayerCount, 7)
        let s = try XCTUnwrap(plan.kvCacheSavings(context: 2048))
        XCTAssertEqual(s.saved, 7 * h.kvHeads * h.headDim * 4 * 2048)
        XCTAssertEqual(s.total, h.layers * 2 * h.kvHeads * h.headDim * 4 * 2048)
        let line = try XCTUnwrap(plan.kvCacheSavingsLine(context: 2048))
        XCTAssertTrue(line.contains(String(format: "%.1f MiB of %.1f MiB", Double(s.saved) / 1_048_576, Double(s.total) / 1_048_576)), line)
        XCTAssertTrue(line.contains("2048 tokens"), line)
        XCTAssertTrue(plan.unmeasuredCostWarning(planPath: "p.json")?.contains("layershare ppl --plan p.json") == true)
        let none = try SharingPlan.sharedAttention(spans: [], model: model)
        XCTAssertNil(none.kvCacheSavingsLine(context: 2048))
        XCTAssertNil(none.unmeasuredCostWarning(planPath: "p.json"))
        XCTAssertNil(plan.kvCacheSavings(context: Int.max / 2), "overflow is reported, not wrapped")
    }

    func testPlanSACommandPrintsMiBAndWarns() throws {
        let out = NSTemporaryDirectory() + "plan-sa-\(UUID().uuidString).json"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let r = try CLIProcess.run(["plan", "sa", "--spans", "14-16", "-c", "4096", "--output", out], timeout: 60)
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertTrue(r.stdout.contains("K cache saved at 4096 tokens of context:"), r.stdout)
        XCTAssertTrue(r.stderr.contains("warning: 3 shared layers will cost perplexity"), r.stderr)
        let bad = try CLIProcess.run(["plan", "sa", "--spans", "14-16", "-c", "0", "--output", out], timeout: 60)
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("--ctx must be at least 1"), bad.all)
    }
}
