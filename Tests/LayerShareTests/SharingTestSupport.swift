import Foundation
import LayerShare
import XCTest

/// Helpers for the sharing tests: temporary files and runners with a plan's layer specs.
enum SharingTestSupport {
    static func temporaryPath(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("sharing-\(UUID().uuidString)-\(name)").path
    }

    static func runner(_ model: LoadedModel, _ backend: BackendKind, specs: [LayerSpec]?, context: Int = 64,
                       maxChunk: Int = 128, device: VulkanDevice? = nil) throws -> ModelRunner {
        var options = RunnerOptions()
        options.backend = backend
        options.context = context
        options.maxChunk = maxChunk
        options.specs = specs
        return try RunnerFactory.make(model: model, options: options, device: device)
    }

    static let prompt = "The quick brown fox jumps over the lazy dog. In 1969, Apollo 11 landed on the Moon, and"

    /// Writes `json` to a temporary file and loads it as a plan, returning the error's text (nil if it loaded).
    static func loadError(_ json: String, model: LoadedModel) -> String? {
        let path = temporaryPath("plan.json")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try! json.write(toFile: path, atomically: true, encoding: .utf8)
        do {
            _ = try SharingPlan.load(path: path, model: model)
            return nil
        } catch {
            return "\(error)"
        }
    }

    /// A valid plan's JSON for `spans`, to be edited into invalid variants.
    static func planJSON(_ model: LoadedModel, spans: [ClosedRange<Int>]) throws -> String {
        let path = temporaryPath("valid.json")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try SharingPlan.sharedAttention(spans: spans, model: model).write(to: path)
        return try String(contentsOfFile: path, encoding: .utf8)
    }
}
