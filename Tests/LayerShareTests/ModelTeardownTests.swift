import Foundation
import LayerShare
import XCTest

/// A device that ran a model's prefill and a decode step leaves no Vulkan object behind once it and
/// everything made on it are released: the validation layer reports objects still alive at
/// vkDestroyDevice and vkDestroyInstance, and any message fails the test.
final class ModelTeardownTests: XCTestCase {
    func testPrefillAndDecodeLeaveNothingBehind() throws {
        let model = try SharedModel.model()
        var device: VulkanDevice?
        do {
            device = try VulkanDevice(validation: true)
        } catch VulkanError.missingFeature(let detail) {
            throw XCTSkip(detail)
        }
        let log = try XCTUnwrap(device?.instance.validationLog)
        try {
            var options = RunnerOptions()
            options.context = 64
            let runner = try RunnerFactory.make(model: model, options: options, device: device)
            let prefill = try runner.forward(model.tokenizer.encode("Tear down after one prefill and one decode step."), logits: .last)
            let next = prefill.indices.max { prefill[$0] < prefill[$1] }!
            let decode = try runner.forward([next], logits: .last)
            XCTAssertEqual(decode.count, model.hyper.vocabSize)
        }()
        weak let released = device
        device = nil
        XCTAssertNil(released, "something still holds the device, so nothing was torn down")
        XCTAssertEqual(log.messages, [])
    }
}
