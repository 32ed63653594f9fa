import Foundation
import LayerShare
import XCTest

/// `layershare calibrate lisa` as a user runs it: a small fit end to end, resuming from the
/// checkpoint, Ctrl-C keeping finished layers, the plan running under `generate`, and bad options.
final class CalibrateCLITests: XCTestCase {
    static let text = "/usr/share/games/fortunes/cookie"  // tools/bootstrap installs it (Debian's fortunes)
    func small(_ extra: [String], output: String) -> [String] {
        ["calibrate", "lisa", "--file", Self.text, "--sequences", "1", "--rows", "8", "--window", "64", "--held-out-tokens", "128",
         "--output", output] + extra
    }

    func testFitResumeInterruptAndRun() throws {
        let dir = try ModelCopies.temporaryDirectory(self).path
        let first = try CLIProcess.run(small(["--layers", "20", "--steps", "3"], output: dir), timeout: 300)
        XCTAssertEqual(first.status, 0, first.all)
        XCTAssertTrue(first.stderr.contains("layer 20 (1/1): step 3/3, KL"), first.stderr)
        XCTAssertTrue(first.stdout.contains("wrote \(dir)/lisa.json (1 LiSA layer(s): 20)"), first.stdout)

        // Layer 20 comes from the checkpoint; only 21 is fitted; a budget run measures held-out perplexity.
        let second = try CLIProcess.run(small(["--layers", "20,21", "--steps", "3", "--max-ppl-increase", "1000"], output: dir), timeout: 300)
        XCTAssertEqual(second.status, 0, second.all)
        XCTAssertTrue(second.stderr.contains("resuming: 1 layer(s) already fitted"), second.stderr)
        XCTAssertFalse(second.stderr.contains("layer 20 (1/"), "layer 20 was fitted again:\n\(second.stderr)")
        XCTAssertTrue(second.stderr.contains("held-out perplexity, no LiSA layer"), second.stderr)
        XCTAssertTrue(second.stdout.contains("held-out perplexity"), second.stdout)

        // Ctrl-C while the second of three layers is fitted: a clear message, the first layer kept (the
        // fit settings, steps included, name the checkpoint; --layers only chooses among its layers).
        let stopped = try CLIProcess.run(small(["--layers", "23-25", "--steps", "600"], output: dir), input: [""],
                                         ready: { _, err in err.contains("layer 24 (2/3): step 0/") },
                                         beforeLine: { _, pid in kill(pid, SIGINT) }, timeout: 300)
        assertClearError(stopped, ["interrupted: 1 fitted layer(s) kept", "run the same command again to resume"])
        let again = try CLIProcess.run(small(["--layers", "23", "--steps", "600", "--name", "again"], output: dir), timeout: 300)
        XCTAssertEqual(again.status, 0, again.all)
        XCTAssertTrue(again.stderr.contains("resuming: 1 layer(s)"), again.stderr)
        XCTAssertFalse(again.stderr.contains("layer 23 (1/"), "layer 23 was fitted again:\n\(again.stderr)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/again.safetensors"))

        let generated = try CLIProcess.run(["generate", "--backend", "cpu", "--plan", dir + "/lisa.json", "-p", "The capital of France is",
                                            "-n", "4"], timeout: 120)
        XCTAssertEqual(generated.status, 0, generated.all)
        XCTAssertTrue(generated.stderr.contains("LiSA (LayerShare formulation, full: rank 10, FFN width 9, rope_sel) in 2 of 30 layers: 20-21"), generated.stderr)
        XCTAssertTrue(generated.stderr.contains("Q/K (score) parameters"), generated.stderr)
        XCTAssertFalse(generated.stdout.isEmpty)
    }

    func testBadOptionsAreNamed() throws {
        let dir = try ModelCopies.temporaryDirectory(self).path
        for (extra, fragment) in [(["--rank", "3"], "--rank must be even"), (["--layers", "0-3"], "layer 0 cannot be LiSA"),
                                  (["--layers", "29-31"], "outside 1..<30"), (["--variant", "alignment", "--rank", "4"], "--variant alignment fits R only"),
                                  (["--steps", "0"], "--steps must be at least 1"), (["--max-ppl-increase", "-2"], "--max-ppl-increase must be"),
                                  (["--held-out-tokens", "99999999"], "need at least --window 64 + --held-out-tokens")] {
            assertClearError(try CLIProcess.run(small(extra, output: dir), timeout: 120), [fragment])
        }
        assertClearError(try CLIProcess.run(["calibrate", "lisa", "--file", "/nonexistent.txt"], timeout: 60), ["/nonexistent.txt"])
    }
}
