import Foundation
import LayerShare
import XCTest

/// The SA plans in docs/plans/ (and no plan) give the logits recorded in
/// Fixtures/plan-logits.json, on both backends, through chunked prefill and decode.
///
/// The fixture was recorded before the layer-spec refactor, so this test shows that moving
/// Shared Attention into `LayerSpec` changed no number. Where the machine is the one the fixture
/// was recorded on (same CPU model, same Vulkan driver), every logit must be bit-identical (a digest
/// of all float bits); elsewhere float rounding in OpenBLAS or the driver's JIT may differ, and the
/// sampled logits must agree within 1e-4 of the row's scale (GPU vs CPU differ by ~3e-6 rel).
/// `LAYERSHARE_RECORD_FIXTURE=1` rewrites the fixture.
final class SharingPlanLogitsFixtureTests: XCTestCase {
    static let fixturePath = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/plan-logits.json").path
    static let plansDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("docs/plans").path
    /// Prefill in chunks of 4 (so chunks start past position 0), then single-token decode steps.
    static let prefillTokens = 11, decodeTokens = 5, chunk = 4
    static let samplesPerRow = 16

    struct Run: Codable {
        var plan: String
        var backend: String
        /// FNV-1a 64 over the bit patterns of every logit of every row.
        var digest: String
        var argmax: [Int]
        /// `samplesPerRow` logits of each row at fixed vocabulary positions.
        var samples: [[Float]]
    }

    struct Fixture: Codable {
        var machine: String
        var runs: [Run]
    }

    func testSharingPlansReproduceRecordedLogits() throws {
        let model = try SharedModel.model()
        let device = try VulkanDevice()
        let machine = Self.machineFingerprint(device: device)
        let plans = try FileManager.default.contentsOfDirectory(atPath: Self.plansDirectory).filter { $0.hasSuffix(".json") }.sorted()
        XCTAssertGreaterThanOrEqual(plans.count, 6)
        let tokens = Array(model.tokenizer.encode(SharingTestSupport.prompt).prefix(Self.prefillTokens + Self.decodeTokens))
        XCTAssertEqual(tokens.count, Self.prefillTokens + Self.decodeTokens)
        var runs: [Run] = []
        for plan in ["none"] + plans {
            let specs = plan == "none" ? nil
                : try SharingPlan.load(path: Self.plansDirectory + "/" + plan, model: model).layerSpecs(for: model.hyper)
            for backend in [BackendKind.cpu, .vulkan] {
                let runner = try SharingTestSupport.runner(model, backend, specs: specs, context: 32, maxChunk: Self.chunk,
                                                           device: backend == .vulkan ? device : nil)
                var logits = try runner.forward(Array(tokens.prefix(Self.prefillTokens)), logits: .all)
                for t in tokens.dropFirst(Self.prefillTokens) { logits += try runner.forward([t], logits: .last) }
                runs.append(Self.summarise(plan: plan, backend: backend.rawValue, logits: logits, vocab: model.hyper.vocabSize))
            }
        }
        if ProcessInfo.processInfo.environment["LAYERSHARE_RECORD_FIXTURE"] == "1" {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(Fixture(machine: machine, runs: runs)).write(to: URL(fileURLWithPath: Self.fixturePath))
            print("recorded \(runs.count) runs into \(Self.fixturePath)")
            return
        }
        let fixture = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: URL(fileURLWithPath: Self.fixturePath)))
        let sameMachine = fixture.machine == machine
        print("plan logits fixture: \(sameMachine ? "same machine, bit-identical check" : "other machine (\(machine)), tolerance check")")
        XCTAssertEqual(Set(fixture.runs.map { "\($0.plan)/\($0.backend)" }), Set(runs.map { "\($0.plan)/\($0.backend)" }))
        for run in runs {
            guard let expected = fixture.runs.first(where: { $0.plan == run.plan && $0.backend == run.backend }) else { continue }
            let name = "\(run.plan) on \(run.backend)"
            if sameMachine {
                XCTAssertEqual(run.digest, expected.digest, "\(name): logits are not bit-identical to the recorded ones")
            }
            XCTAssertEqual(run.argmax, expected.argmax, "\(name): greedy tokens changed")
            for (row, (a, b)) in zip(run.samples, expected.samples).enumerated() {
                let scale = max(1, b.map { abs($0) }.max() ?? 0)
                let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
                XCTAssertLessThanOrEqual(worst, 1e-4 * scale, "\(name), row \(row): sampled logits differ by \(worst)")
            }
        }
    }

    static func summarise(plan: String, backend: String, logits: [Float], vocab: Int) -> Run {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for v in logits {
            var bits = v.bitPattern
            for _ in 0..<4 {
                hash = (hash ^ UInt64(bits & 0xFF)) &* 0x100_0000_01b3
                bits >>= 8
            }
        }
        let rows = logits.count / vocab
        var argmax: [Int] = [], samples: [[Float]] = []
        for r in 0..<rows {
            let row = logits[(r * vocab)..<((r + 1) * vocab)]
            argmax.append(row.indices.max { row[$0] < row[$1] }! - r * vocab)
            samples.append((0..<samplesPerRow).map { row[r * vocab + ($0 * vocab / samplesPerRow + 7 * $0 + 3) % vocab] })
        }
        return Run(plan: plan, backend: backend, digest: String(hash, radix: 16), argmax: argmax, samples: samples)
    }

    /// What bit-identity depends on: the CPU (OpenBLAS kernels and lavapipe's JIT target it) and the driver.
    static func machineFingerprint(device: VulkanDevice) -> String {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }?
            .split(separator: ":", maxSplits: 1).last?.trimmingCharacters(in: .whitespaces) ?? "unknown CPU"
        return "\(model) / \(device.info.name) / driver \(device.info.driverVersion)"
    }
}
