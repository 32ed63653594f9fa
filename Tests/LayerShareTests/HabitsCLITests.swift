import Foundation
import LayerShare
import XCTest

/// Issue 15's command-line habits: llama.cpp's short options, prompts from standard input, stop
/// text, the repeat penalty, --version, `info`, negative numbers as values, and one name per concept.
final class HabitsCLITests: XCTestCase {
    private func run(_ arguments: [String], input: [String]? = nil) throws -> CLIProcess.Result {
        try CLIProcess.run(arguments, input: input, timeout: 60)
    }

    private let france = ["generate", "--backend", "cpu", "--temperature", "0"]

    func testShortOptionsGiveTheLongOnesOutput() throws {
        let model = LoadedModel.defaultPath()
        let long = try run(france + ["--model", model, "--prompt", "The capital of France is", "--max-tokens", "3", "--ctx", "32"])
        XCTAssertEqual(long.status, 0, long.all)
        XCTAssertTrue(long.stdout.hasPrefix(" Paris"), long.stdout)
        let short = try run(["generate", "--backend", "cpu", "--temp", "0", "-m", model, "-p", "The capital of France is", "-n", "3", "-c", "32"])
        XCTAssertEqual(short.stdout, long.stdout, short.all)
        let ctxSize = try run(france + ["-p", "The capital of France is", "-n", "3", "--ctx-size", "32"])
        XCTAssertEqual(ctxSize.stdout, long.stdout, ctxSize.all)
        XCTAssertTrue(ctxSize.stderr.contains("context 32,"), ctxSize.stderr)
    }

    func testThePromptCanComeFromStandardInput() throws {
        let inline = try run(france + ["-p", "The capital of France is", "-n", "3", "-c", "32"])
        let dash = try run(france + ["-p", "-", "-n", "3", "-c", "32"], input: ["The capital of France is"])
        let piped = try run(france + ["-n", "3", "-c", "32"], input: ["The capital of France is"])
        XCTAssertEqual(inline.status, 0, inline.all)
        XCTAssertEqual(dash.stdout, inline.stdout, dash.all)
        XCTAssertEqual(piped.stdout, inline.stdout, piped.all)
        let nothing = try run(france + ["-n", "3"])  // standard input is /dev/null: no prompt
        assertClearError(nothing, ["--prompt is required"])
    }

    func testStopTextEndsTheOutputBeforeIt() throws {
        let free = try run(france + ["-p", "The capital of France is", "-n", "6", "-c", "32"])
        XCTAssertTrue(free.stdout.hasPrefix(" Paris."), free.all)
        let stopped = try run(france + ["-p", "The capital of France is", "-n", "6", "-c", "32", "--stop", "xyz", "--stop", "."])
        XCTAssertEqual(stopped.status, 0, stopped.all)
        XCTAssertEqual(stopped.stdout, " Paris\n")
        XCTAssertTrue(stopped.stderr.contains("generated tokens: 2,"), stopped.stderr)
    }

    /// Greedy SmolLM2 answers "red blue red blue red blue" with " blue" over and over.
    func testTheRepeatPenaltyBreaksARepetition() throws {
        let prompt = ["-p", "red blue red blue red blue", "-n", "6", "-c", "32"]
        let plain = try run(france + prompt)
        XCTAssertTrue(plain.stdout.contains("blue blue blue"), plain.all)
        let penalized = try run(france + prompt + ["--repeat-penalty", "1.5"])
        XCTAssertEqual(penalized.status, 0, penalized.all)
        XCTAssertFalse(penalized.stdout.contains("blue blue"), penalized.stdout)
        XCTAssertNotEqual(penalized.stdout, plain.stdout)
    }

    func testVersionAndHelpNameTheScheme() throws {
        let version = try run(["--version"])
        XCTAssertEqual(version.status, 0)
        XCTAssertEqual(version.stdout.trimmingCharacters(in: .whitespacesAndNewlines), LayerShareVersion.string)
        let help = try run(["--help"])
        XCTAssertTrue(help.stdout.contains("One name per concept: -n/--max-tokens") && help.stdout.contains("--score-tokens")
                      && help.stdout.contains("  info "), help.stdout)
        let generate = try run(["generate", "--help"])
        for option in ["-m, --model", "-p, --prompt", "-n, --max-tokens", "-c, --ctx-size", "--temp", "--min-p", "--repeat-penalty",
                       "--repeat-last-n", "--stop", "--ignore-eos"] {
            XCTAssertTrue(generate.stdout.contains(option), "generate --help lacks \(option):\n\(generate.stdout)")
        }
    }

    func testInfoDescribesTheModel() throws {
        let r = try run(["info", "--ctx", "256"])
        XCTAssertEqual(r.status, 0, r.all)
        for fragment in ["architecture: llama", "layers: 30, hidden: 576, feed-forward: 1536", "heads: 9, KV heads: 3, head dim: 64",
                         "vocabulary: 49152", "context: 8192 (trained)", "tensors: 272", "Q4_1: ", "F32: ",
                         "tokenizer: byte-level BPE", "EOS 2", "<|im_end|> 2", "chat template: ChatML",
                         "memory on cpu at context 256: ", "memory on vulkan at context 256: ", "KV cache 11.2 MiB"] {
            XCTAssertTrue(r.stdout.contains(fragment), "info lacks \"\(fragment)\":\n\(r.stdout)")
        }
    }

    /// `-1` after an option is its value, so these reach the checks instead of "Missing value".
    func testNegativeValuesReachValidation() throws {
        let cases: [([String], String)] = [
            (["generate", "--backend", "cpu", "-p", "hi", "--temp", "-1"], "temperature must be a finite number"),
            (["generate", "--backend", "cpu", "-p", "hi", "--temperature", "-0.5"], "temperature must be a finite number"),
            (["generate", "--backend", "cpu", "-p", "hi", "-n", "-1"], "--max-tokens must not be negative, got -1"),
            (["generate", "--backend", "cpu", "-p", "hi", "--top-k", "-2"], "top-k must be ≥ 0"),
            (["generate", "--backend", "cpu", "-p", "hi", "--min-p", "-0.1"], "min-p must be in [0, 1]"),
            (["generate", "--backend", "cpu", "-p", "hi", "--repeat-penalty", "0"], "repeat-penalty must be a finite number other than 0"),
            (["generate", "--backend", "cpu", "-p", "hi", "-c", "-5"], "--ctx must be positive, got -5"),
            (["compare", "-n", "-3"], "--max-tokens must not be negative"),
            (["compare", "--tokens", "-3"], "--max-tokens must not be negative"),  // the old name
            (["profile", "--tokens", "-1"], "--max-tokens must not be negative"),
            (["bench", "--steps", "0"], "--max-tokens must be at least 1, got 0"),
            (["ppl", "--backend", "cpu", "--file", "/usr/share/common-licenses/GPL-3", "--score-tokens", "-1"], "--score-tokens must not be negative"),
            (["plan", "headshare", "--rate", "-0.5", "--output", "/nonexistent/never.json"], "--rate must be between 0 and 1"),
            (["plan", "sa", "--min-span", "-1", "--spans", "1-2", "--output", "/nonexistent/never.json"], "--min-span must be at least 1"),
        ]
        for (arguments, fragment) in cases {
            let r = try run(arguments)
            XCTAssertFalse(r.stderr.contains("Missing value"), r.stderr)
            assertClearError(r, [fragment])
        }
    }

    func testPerplexityScoreTokensAndItsOldName() throws {
        let base = ["ppl", "--backend", "cpu", "--file", "/usr/share/common-licenses/GPL-3", "--window", "32"]
        let new = try run(base + ["--score-tokens", "64"])
        let old = try run(base + ["--max-tokens", "64"])
        XCTAssertEqual(new.status, 0, new.all)
        XCTAssertTrue(new.stdout.contains("(62 tokens scored"), new.stdout)  // two windows of 32 score 31 each
        XCTAssertEqual(old.stdout, new.stdout)
    }

    /// bench --plan is one more configuration next to the baseline, like --plans.
    func testBenchRunsThePlanOptionAsAConfiguration() throws {
        let dir = try ModelCopies.temporaryDirectory(self)
        let plan = dir.appendingPathComponent("spans.json").path
        XCTAssertEqual(try run(["plan", "sa", "--spans", "2-3", "--output", plan]).status, 0)
        let r = try run(["bench", "--backend", "cpu", "--plan", plan, "-n", "2", "--runs", "1", "--contexts", "8",
                         "--output", dir.appendingPathComponent("bench").path])
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertTrue(r.stdout.contains("baseline") && r.stdout.contains("spans.json"), r.stdout)
        XCTAssertTrue(r.stdout.contains("2 decode steps"), r.stdout)
    }
}
