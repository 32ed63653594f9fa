import Foundation
import VulkanCompute
import XCTest

/// Shared setup: one device per test case, validation on when LAYERSHARE_VALIDATION=1 (tools/test sets it),
/// and a check at tear-down that the validation layer stayed silent.
class VulkanTestCase: XCTestCase {
    var device: VulkanDevice!
    var scratch: URL!

    override func setUpWithError() throws {
        device = try VulkanDevice()
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("layershare-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        let log = device?.instance.validationLog
        device = nil
        if let scratch { try? FileManager.default.removeItem(at: scratch) }  // nil when setUp failed
        if let messages = log?.messages, !messages.isEmpty {
            XCTFail("validation layer reported \(messages.count) message(s):\n" + messages.joined(separator: "\n"))
        }
    }

    func writeShader(_ name: String, _ text: String) throws {
        try text.write(to: scratch.appendingPathComponent(name), atomically: true, encoding: .utf8)
    }
}
