import Foundation
import LayerShare
import XCTest

/// Issue 13's kinds of bad input, as a user meets them on the command line: each ends with a
/// non-zero exit and a message that names the problem (never a trap, a hang or silent garbage).
final class LimitsCLITests: XCTestCase {
    private func run(_ arguments: [String], environment: [String: String] = [:], timeout: TimeInterval = 60) throws -> CLIProcess.Result {
        try CLIProcess.run(arguments, environment: environment, timeout: timeout)
    }

    func testNumbersThatDoNotFitEndInAClearError() throws {
        let cases: [([String], [String])] = [
            (["generate", "--prompt", "hi", "--ctx", "1000000000000000"],
             ["--ctx 1000000000000000 needs more than 8 EiB of KV cache", "the device (", "the largest --ctx that fits is"]),
            (["generate", "--backend", "cpu", "--prompt", "hi", "--ctx", "100000000"],
             ["--ctx 100000000 needs", "this machine has room for", "the largest --ctx that fits is"]),
            (["generate", "--backend", "cpu", "--prompt", "hi", "--chunk", "0"], ["--chunk must be positive, got 0"]),
            (["generate", "--backend", "cpu", "--prompt", "hi", "--max-tokens=-1"], ["--max-tokens must not be negative"]),
            (["generate", "--backend", "cpu", "--prompt", "hi", "--temperature", "nan"], ["temperature must be a finite number"]),
            (["generate", "--backend", "cpu", "--prompt", "hi", "--top-k=-1"], ["top-k must be ≥ 0"]),
            (["ppl", "--backend", "cpu", "--file", "/usr/share/common-licenses/GPL-3", "--window", "0"], ["--window must be at least 2, got 0"]),
            (["ppl", "--backend", "cpu", "--file", "/usr/share/common-licenses/GPL-3", "--window", "8", "--stride", "0"], ["--stride must be in 1...8"]),
            (["profile", "-n", "9223372036854775807"], ["--max-tokens 9223372036854775807 is too large"]),
            (["compare", "--max-tokens=-3"], ["--max-tokens must not be negative"]),
            (["bench", "--max-tokens", "0"], ["--max-tokens must be at least 1, got 0"]),
            (["bench", "--contexts", "9223372036854775807"], ["--contexts 9223372036854775807 + --max-tokens 16 is too large"]),
            (["plan", "sa", "--spans", "1-1000000000000000000", "--output", "/nonexistent/never.json"],
             ["span 0 (1-1000000000000000000) names layers 30-1000000000000000000, out of range 0..<30"]),
        ]
        for (arguments, fragments) in cases {
            assertClearError(try run(arguments, timeout: 30), fragments)
        }
    }

    /// Attention maps grow with tokens²: a long sequence is refused before the allocation.
    func testAnAnalysisTooBigForMemoryIsRefused() throws {
        let text = try String(contentsOfFile: "/usr/share/common-licenses/GPL-3", encoding: .utf8)
        let file = try ModelCopies.temporaryDirectory(self).appendingPathComponent("long.txt")
        try String(repeating: text, count: 4).write(to: file, atomically: true, encoding: .utf8)
        assertClearError(try run(["analyze", "--file", file.path, "--tokens", "1000000", "--sequences", "1", "--output", "/nonexistent/x"]),
                         ["-token sequences need", "(layers × heads × tokens² floats)", "the largest --tokens that fits is"])
    }

    func testAChunkLargerThanTheContextIsClampedWithANote() throws {
        let r = try run(["generate", "--backend", "cpu", "--prompt", "hi", "--chunk", "100000000", "--ctx", "32", "--max-tokens", "1"])
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertTrue(r.stderr.contains("[cpu, context 32,") && r.stderr.contains("--chunk 100000000 is larger than the context"), r.stderr)
    }

    func testTheEndOfTheContextIsAnnounced() throws {
        let r = try run(["generate", "--backend", "cpu", "--prompt", "hi", "--ctx", "8", "--max-tokens", "20", "--temperature", "0"])
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertTrue(r.stderr.contains("stopped at the end of the context (8 tokens) after 7 of --max-tokens 20"), r.stderr)
    }

    func testChatGoesOnWhenTheContextIsFull() throws {
        let r = try CLIProcess.run(["generate", "--backend", "cpu", "--chat", "--ctx", "64", "--max-tokens", "100", "--temperature", "0"],
                                   input: ["Tell me a long story about a dragon.", "And then?"])
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertTrue(r.stderr.contains("the reply stops here, and the next message starts a new conversation with the system prompt"), r.stderr)
        XCTAssertTrue(r.stderr.contains("starting a new conversation with the system prompt and this message (the last reply filled the context)"),
                      r.stderr)
        XCTAssertEqual(r.stderr.components(separatedBy: "prompt tokens:").count - 1, 2, r.stderr)
    }

    /// The CPU backend copies everything it reads at run time: truncating the model between two
    /// chat turns (the second turn embeds new tokens) must not fault.
    func testTruncatingTheModelDuringACPURunDoesNotCrash() throws {
        let copy = try ModelCopies.temporaryDirectory(self).appendingPathComponent("model.gguf")
        try FileManager.default.copyItem(at: URL(fileURLWithPath: SharedModel.path), to: copy)
        let r = try CLIProcess.run(["generate", "--model", copy.path, "--backend", "cpu", "--chat", "--ctx", "128",
                                    "--max-tokens", "4", "--temperature", "0"],
                                   input: ["Hello", "Name a colour"],
                                   ready: { i, stderr in i == 0 || stderr.contains("prompt tokens:") },
                                   beforeLine: { i, _ in if i == 1 { truncate(copy.path, 4096) } })
        XCTAssertFalse(r.timedOut, r.all)
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertEqual(r.stderr.components(separatedBy: "prompt tokens:").count - 1, 2, r.stderr)
    }

    /// A fault on the mapping while loading cannot be prevented; it must be explained (signalled by
    /// hand here: a real truncation mid-load cannot be timed).
    func testABusErrorIsExplained() throws {
        let r = try CLIProcess.run(["generate", "--backend", "cpu", "--chat", "--ctx", "32"], input: ["never read"],
                                   ready: { _, stderr in stderr.contains("interactive chat") }, beforeLine: { _, pid in kill(pid, SIGBUS) })
        XCTAssertEqual(r.status, 135, r.all)
        XCTAssertTrue(r.stderr.contains("bus error reading a memory-mapped file: the model file was truncated or changed"), r.stderr)
    }

    func testFilesThatCannotBeUsedAreNamed() throws {
        let dir = try ModelCopies.temporaryDirectory(self)
        let fifo = dir.appendingPathComponent("fifo").path
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        assertClearError(try run(["generate", "--model", fifo, "--prompt", "x"], timeout: 20), ["model \(fifo) is a FIFO (named pipe)"])
        assertClearError(try run(["ppl", "--file", fifo], timeout: 20), ["--file \(fifo) is a FIFO (named pipe)"])
        assertClearError(try run(["ppl", "--file", "/nonexistent/text"]), ["--file /nonexistent/text does not exist"])
        assertClearError(try run(["generate", "--backend", "cpu", "--prompt", "@/nonexistent/prompt"]),
                         ["prompt file /nonexistent/prompt does not exist"])
        assertClearError(try run(["logits", "--backend", "cpu", "--prompt", "hi", "--output", "/nonexistent-dir/x.npy"]),
                         ["cannot write /nonexistent-dir/x.npy: No such file or directory"])
        assertClearError(try run(["plan", "sa", "--spans", "23-26", "--output", "/nonexistent-dir/p.json"]),
                         ["cannot access /nonexistent-dir/p.json: No such file or directory"])
    }

    func testNoVulkanDriverPointsToTheCPUBackend() throws {
        let none = ["VK_ICD_FILENAMES": "/nonexistent/icd.json", "VK_DRIVER_FILES": "/nonexistent/icd.json", "LAYERSHARE_VALIDATION": "0"]
        assertClearError(try run(["generate", "--prompt", "hi", "--max-tokens", "1"], environment: none), ["no Vulkan device found", "--backend cpu"])
    }

    func testANaNWeightIsRejectedAtLoad() throws {
        let model = try ModelCopies.withValue(.nan, in: "blk.3.attn_norm.weight", element: 5, test: self)
        assertClearError(try run(["generate", "--model", model.path, "--backend", "cpu", "--prompt", "hi"]),
                         ["tensor 'blk.3.attn_norm.weight' holds a non-finite value (nan) at row 0, column 5"])
    }

    /// Finite weights so large that activations overflow: generation, perplexity and logits stop
    /// with the position, and compare names the layer.
    func testNonFiniteLogitsAreNeverSampledOrScored() throws {
        let model = try ModelCopies.withValue(3e38, in: "blk.2.ffn_norm.weight", test: self).path
        let expected = ["the model produced a non-finite logit", "at context position", "`layershare compare`"]
        assertClearError(try run(["generate", "--model", model, "--backend", "cpu", "--prompt", "hi there"]), expected + ["(the last prompt token)"])
        assertClearError(try run(["ppl", "--model", model, "--backend", "cpu", "--file", "/usr/share/common-licenses/GPL-3",
                                  "--window", "16", "--score-tokens", "32"]), expected + ["(token 0 of the text)"])
        let npy = FileManager.default.temporaryDirectory.appendingPathComponent("limits-\(UUID().uuidString).npy")
        assertClearError(try run(["logits", "--model", model, "--backend", "cpu", "--prompt", "hi", "--output", npy.path]), expected)
        XCTAssertFalse(FileManager.default.fileExists(atPath: npy.path), "a logits file of NaN was left behind")
        let c = try run(["compare", "--model", model, "--max-tokens", "1"])
        XCTAssertNotEqual(c.status, 0, c.all)
        XCTAssertTrue(c.stdout.contains("first non-finite hidden state: layer 2 on vulkan"), c.stdout)
    }
}
