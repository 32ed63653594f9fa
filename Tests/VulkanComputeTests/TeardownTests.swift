import CVulkan
import Foundation
@testable import VulkanCompute
import XCTest

/// Every Vulkan object is destroyed with its owner. The validation layer reports objects still
/// alive at vkDestroyDevice and vkDestroyInstance (the messenger covers both), so after the last
/// reference goes, its log must be empty.
final class TeardownTests: XCTestCase {
    /// Runs `body` on a fresh validated device, releases everything and returns the layer's log.
    func logAfterTeardown(_ body: (VulkanDevice) throws -> Void) throws -> ValidationLog {
        try XCTSkipUnless(VulkanInstance.instanceLayerNames().contains("VK_LAYER_KHRONOS_validation"), "validation layer not installed")
        var device: VulkanDevice? = try VulkanDevice(validation: true)
        let log = try XCTUnwrap(device?.instance.validationLog)
        try body(device!)
        weak let released = device
        device = nil
        XCTAssertNil(released, "something still holds the device, so nothing was torn down")
        return log
    }

    func testNothingOutlivesTheDevice() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("layershare-teardown-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        try RuntimeTests.scaleShader.write(to: scratch.appendingPathComponent("scale.comp"), atomically: true, encoding: .utf8)
        let log = try logAfterTeardown { device in
            let library = PipelineLibrary(device: device, compiler: ShaderCompiler(sourceDirectory: scratch, cacheDirectory: nil))
            let pipeline = try library.pipeline("scale.comp", defines: ["FACTOR": "2.0"], specialization: [.uint(64)], bindings: 2, pushConstantBytes: 8)
            let x = try DeviceBuffer(device: device, byteCount: 256, label: "x")
            let y = try DeviceBuffer(device: device, byteCount: 256, label: "y")
            try x.upload([Float](repeating: 1, count: 64))
            _ = x.floatTexelView
            let batch = try CommandBatch(device: device, maxTimestamps: 4)
            try batch.begin()
            try batch.dispatch(pipeline, [.read(x), .write(y)], push: [.uint(64), .float(0)], groups: (1, 1, 1))
            try batch.run()
            XCTAssertEqual(try y.download(Float.self, count: 64), [Float](repeating: 2, count: 64))
        }
        XCTAssertEqual(log.messages, [])
    }

    /// Negative control: a buffer made behind the runtime's back and never destroyed is reported.
    func testALeakedBufferIsReported() throws {
        let log = try logAfterTeardown { device in
            device.instance.validationLog?.echo = false  // the expected report is checked below
            var info = VkBufferCreateInfo()
            info.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO
            info.size = 256
            info.usage = VkBufferUsageFlags(VK_BUFFER_USAGE_STORAGE_BUFFER_BIT.rawValue)
            var leaked: VkBuffer?
            try check(vkCreateBuffer(device.handle, &info, nil, &leaked), "vkCreateBuffer")
        }
        XCTAssertTrue(log.messages.contains { $0.contains("has not been destroyed") }, log.messages.joined(separator: "\n"))
    }
}
