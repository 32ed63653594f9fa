import Foundation
import LayerShare
import XCTest

/// Runs the built `layershare` executable the way a user does: subcommands are registered, the main
/// commands work end to end, and bad input ends with a clear message and a non-zero exit.
final class CLITests: XCTestCase {
    struct Run {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    /// The executable sits next to the test bundle in the build folder.
    private var executable: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent("layershare")
    }

    private func run(_ arguments: [String]) throws -> Run {
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            throw ModelLoadError("layershare executable not found at \(executable.path) (build with --build-tests)")
        }
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        // Children inherit LAYERSHARE_VALIDATION; any validation message fails the test.
        XCTAssertFalse(String(decoding: errData, as: UTF8.self).contains("[vulkan validation]"),
                       "validation layer spoke during layershare \(arguments.joined(separator: " "))")
        return Run(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                   stderr: String(decoding: errData, as: UTF8.self))
    }

    func testHelpListsEverySubcommand() throws {
        let r = try run(["--help"])
        XCTAssertEqual(r.status, 0)
        for name in ["devices", "info", "generate", "compare", "logits", "ppl", "profile", "bench", "analyze", "plan", "calibrate", "tokenize", "serve"] {
            XCTAssertTrue(r.stdout.contains("  \(name) "), "--help does not list \(name):\n\(r.stdout)")
        }
    }

    /// info names a Llama-3-style file's RoPE scaling and a Qwen2-style file's biases (RandomGGUF), and
    /// generate runs on each; a yarn file is refused with the type named.
    func testLlamaFamilyFilesInInfoAndGenerate() throws {
        let llama = try run(["info", "-m", RandomGGUF.path("llama3", ["--linear-scaling", "4"])])
        XCTAssertEqual(llama.status, 0, llama.stderr)
        XCTAssertTrue(llama.stdout.contains("rope scaling: linear, factor 4.0; 8 per-pair frequency factors"), llama.stdout)
        XCTAssertTrue(llama.stdout.contains("chat template: Llama 3"), llama.stdout)
        let qwen = try run(["info", "-m", RandomGGUF.path("qwen2")])
        XCTAssertTrue(qwen.stdout.contains("architecture: qwen2") && qwen.stdout.contains("Q/K/V biases: yes"), qwen.stdout)
        XCTAssertFalse(qwen.stdout.contains("rope scaling"), qwen.stdout)
        for style in ["llama3", "qwen2"] {
            let r = try run(["generate", "-m", RandomGGUF.path(style), "-p", "the cat", "-n", "4", "--temp", "0", "--ctx", "32"])
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        let yarn = try run(["info", "-m", RandomGGUF.path("llama3", ["--scaling-type", "yarn"])])
        XCTAssertNotEqual(yarn.status, 0)
        XCTAssertTrue(yarn.stderr.contains("yarn"), yarn.stderr)
    }

    func testDevicesListsTheVulkanDevice() throws {
        let r = try run(["devices"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("subgroup size") && r.stdout.contains("(selected)"), r.stdout)
    }

    func testGenerateGreedyOnBothBackends() throws {
        for backend in ["cpu", "vulkan"] {
            let r = try run(["generate", "--backend", backend, "--prompt", "The capital of France is", "--temperature", "0",
                             "--max-tokens", "3", "--ctx", "32"])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stdout.hasPrefix(" Paris"), "\(backend): \(r.stdout.debugDescription)")
            XCTAssertTrue(r.stderr.contains("decode:") && r.stderr.contains("tok/s"), r.stderr)
        }
    }

    func testCompareAgreesAndLogitsWritesNpy() throws {
        let c = try run(["compare", "--prompt", "Water boils at", "--max-tokens", "4"])
        XCTAssertEqual(c.status, 0, c.stdout + c.stderr)
        XCTAssertTrue(c.stdout.contains("greedy top-1 agreement: 4/4"), c.stdout)

        let file = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString).npy")
        defer { try? FileManager.default.removeItem(at: file) }
        let l = try run(["logits", "--backend", "cpu", "--prompt", "Hello world", "--output", file.path])
        XCTAssertEqual(l.status, 0, l.stderr)
        let (shape, values) = try NpyReader.read(file)
        XCTAssertEqual(shape.count, 2)
        XCTAssertEqual(shape.last, 49152)
        XCTAssertEqual(values.count, shape.reduce(1, *))
        XCTAssertTrue(values.allSatisfy(\.isFinite))
    }

    func testPerplexityPrintsItsLastLine() throws {
        let r = try run(["ppl", "--backend", "cpu", "--file", "/usr/share/common-licenses/GPL-3", "--window", "64",
                         "--score-tokens", "128"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let last = r.stdout.split(separator: "\n").last.map(String.init) ?? ""
        XCTAssertTrue(last.hasPrefix("perplexity: ") && last.contains("tokens scored"), r.stdout)
    }

    func testPlanHeadShareWritesAPlanAndPrintsItsSummary() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString)-hs.json")
        defer { try? FileManager.default.removeItem(at: file) }
        let r = try run(["plan", "headshare", "--rate", "0.1", "--output", file.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        for fragment in ["best-match cosine: min", "selected 9 units (int(0.1 × 90) = 9); threshold", "layer  shared",
                         "9 of 90 units (KV groups)", "units shared per layer", "weight bytes saved: ", "wrote \(file.path)"] {
            XCTAssertTrue(r.stdout.contains(fragment), "missing \"\(fragment)\":\n\(r.stdout)")
        }
        let plan = try SharingPlan.load(path: file.path, model: SharedModel.model())
        XCTAssertEqual(plan.sharedUnits.count, 9)
        XCTAssertEqual(plan.headShare?.chains, "original")

        let help = try run(["plan", "headshare", "--help"])
        XCTAssertEqual(help.status, 0)
        for option in ["--rate", "--strategy", "--chains", "--spans", "authors"] {
            XCTAssertTrue(help.stdout.contains(option), "--help does not explain \(option):\n\(help.stdout)")
        }
    }

    func testPlanHeadShareRejectsARateOutsideZeroToOne() throws {
        for rate in ["2", "-0.5", "nan"] {
            let r = try run(["plan", "headshare", "--rate=\(rate)", "--output", "/nonexistent/never-written.json"])
            XCTAssertNotEqual(r.status, 0)
            XCTAssertTrue(r.stderr.contains("--rate must be between 0 and 1"), r.stderr)
        }
    }

    func testBadInputEndsWithAClearError() throws {
        let missing = try run(["generate", "--model", "/nonexistent/model.gguf", "--prompt", "x"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("/nonexistent/model.gguf") && missing.stderr.contains("bootstrap"), missing.stderr)

        let device = try run(["generate", "--device", "no-such-gpu", "--prompt", "x", "--max-tokens", "1"])
        XCTAssertNotEqual(device.status, 0)
        XCTAssertTrue(device.stderr.contains("no-such-gpu"), device.stderr)

        let sampling = try run(["generate", "--backend", "cpu", "--prompt", "x", "--top-p", "0"])
        XCTAssertNotEqual(sampling.status, 0)
        XCTAssertTrue(sampling.stderr.lowercased().contains("top"), sampling.stderr)
    }
}
