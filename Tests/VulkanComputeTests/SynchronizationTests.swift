import CVulkan
import Foundation
@testable import VulkanCompute
import XCTest

/// Synchronization validation (LAYERSHARE_VALIDATION=sync): the layer must see hazards in this
/// runtime's command buffers and submissions (negative controls), and the runtime's own barriers
/// must leave none.
final class SynchronizationTests: VulkanTestCase {
    var synchronization: Bool { ValidationMode(environment: ProcessInfo.processInfo.environment) == .synchronization }

    func scalePipeline() throws -> ComputePipeline {
        try writeShader("scale.comp", RuntimeTests.scaleShader)
        let library = PipelineLibrary(device: device, compiler: ShaderCompiler(sourceDirectory: scratch, cacheDirectory: nil))
        return try library.pipeline("scale.comp", defines: ["FACTOR": "2.0"], specialization: [.uint(64)], bindings: 2, pushConstantBytes: 8)
    }

    /// Takes the log's messages and empties it, so tear-down does not count an expected report.
    func takeMessages() -> [String] {
        let messages = device.instance.validationLog?.messages ?? []
        device.instance.validationLog?.clear()
        return messages
    }

    func testHazardInsideABatchIsReported() throws {
        try XCTSkipUnless(synchronization, "needs LAYERSHARE_VALIDATION=sync")
        device.instance.validationLog?.echo = false  // the expected report is checked below
        let pipeline = try scalePipeline()
        let x = try DeviceBuffer(device: device, byteCount: 256, label: "x")
        let y = try DeviceBuffer(device: device, byteCount: 256, label: "y")
        let batch = try CommandBatch(device: device)
        try batch.begin()
        try batch.dispatch(pipeline, [.read(x), .write(y)], push: [.uint(64), .float(0)], groups: (1, 1, 1))
        vkCmdFillBuffer(batch.commandBuffer, y.handle, 0, 256, 0)  // behind the batch's back: no barrier
        try batch.run()
        let messages = takeMessages()
        // The earlier write is the kernel's, seen through its push descriptor.
        XCTAssertTrue(messages.contains { $0.contains("SYNC-HAZARD-WRITE-AFTER-WRITE") && $0.contains("SYNC_COMPUTE_SHADER_SHADER_STORAGE_WRITE") },
                      messages.joined(separator: "\n"))
    }

    /// Reads through texel views (how the CPU-driver path streams weights) are tracked too.
    func testHazardOnATexelReadIsReported() throws {
        try XCTSkipUnless(synchronization, "needs LAYERSHARE_VALIDATION=sync")
        device.instance.validationLog?.echo = false  // the expected report is checked below
        try writeShader("texel_copy.comp", """
        #version 450
        layout(local_size_x = 64) in;
        layout(set = 0, binding = 0) uniform samplerBuffer x;
        layout(set = 0, binding = 1) writeonly buffer Out { vec4 y[]; };
        void main() { y[gl_GlobalInvocationID.x] = texelFetch(x, int(gl_GlobalInvocationID.x)); }
        """)
        let library = PipelineLibrary(device: device, compiler: ShaderCompiler(sourceDirectory: scratch, cacheDirectory: nil))
        let pipeline = try library.pipeline("texel_copy.comp", bindingKinds: [.uniformTexelBuffer, .storageBuffer], pushConstantBytes: 0)
        let x = try DeviceBuffer(device: device, byteCount: 1024, label: "x")
        let y = try DeviceBuffer(device: device, byteCount: 1024, label: "y")
        let view = try TexelBufferView(buffer: x, format: .rgba32Float)
        let batch = try CommandBatch(device: device)
        try batch.begin()
        try batch.dispatch(pipeline, [.texels(view), .write(y)], groups: (1, 1, 1))
        vkCmdFillBuffer(batch.commandBuffer, x.handle, 0, 1024, 0)  // overwrites what the kernel reads: no barrier
        try batch.run()
        let messages = takeMessages()
        XCTAssertTrue(messages.contains { $0.contains("SYNC-HAZARD-WRITE-AFTER-READ") }, messages.joined(separator: "\n"))
    }

    func testHazardAcrossSubmissionsIsReported() throws {
        try XCTSkipUnless(synchronization, "needs LAYERSHARE_VALIDATION=sync")
        device.instance.validationLog?.echo = false  // the expected report is checked below
        let buffer = try DeviceBuffer(device: device, byteCount: 256, label: "b")
        let first = try CommandBatch(device: device), second = try CommandBatch(device: device)
        for (batch, value) in [(first, UInt32(1)), (second, UInt32(2))] {  // submitted without the hand-off barrier
            try batch.begin()
            vkCmdFillBuffer(batch.commandBuffer, buffer.handle, 0, 256, value)
            try check(vkEndCommandBuffer(batch.commandBuffer), "vkEndCommandBuffer")
            try batch.fence.reset()
            try device.submit(batch.commandBuffer, fence: batch.fence)
        }
        try first.fence.wait()
        try second.fence.wait()
        let messages = takeMessages()
        XCTAssertTrue(messages.contains { $0.contains("SYNC-HAZARD-WRITE-AFTER-WRITE") }, messages.joined(separator: "\n"))
    }

    /// Two batches in flight at once, the second reading what the first wrote: ordered by the
    /// first's closing barrier alone (no fence wait between the submissions).
    func testBatchesInFlightTogetherAreOrdered() throws {
        let pipeline = try scalePipeline()
        let values = (0..<64).map { Float($0) }
        let x = try DeviceBuffer(device: device, byteCount: 256, label: "x")
        let mid = try DeviceBuffer(device: device, byteCount: 256, label: "mid")
        let y = try DeviceBuffer(device: device, byteCount: 256, label: "y")
        try x.upload(values)
        let first = try CommandBatch(device: device), second = try CommandBatch(device: device)
        try first.begin()
        try first.dispatch(pipeline, [.read(x), .write(mid)], push: [.uint(64), .float(1)], groups: (1, 1, 1))
        try first.submit()
        try second.begin()
        try second.dispatch(pipeline, [.read(mid), .write(y)], push: [.uint(64), .float(0)], groups: (1, 1, 1))
        try second.submit()
        try first.wait()
        try second.wait()
        XCTAssertEqual(try y.download(Float.self, count: 64), values.map { ($0 * 2 + 1) * 2 })
    }
}
