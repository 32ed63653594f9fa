import CVulkan
import Foundation
@testable import VulkanCompute
import XCTest

/// The discrete-GPU memory path, forced on this device: lavapipe has unified memory, so without
/// `forceDiscrete` staging copies and unmapped device-local buffers never run here.
final class DiscreteMemoryTests: VulkanTestCase {
    override func setUpWithError() throws {
        try super.setUpWithError()
        device = try VulkanDevice(forceDiscrete: true)
    }

    func flags(_ buffer: DeviceBuffer) -> UInt32 {
        withUnsafeBytes(of: device.memoryProperties.memoryTypes) { $0.bindMemory(to: VkMemoryType.self)[Int(buffer.memoryTypeIndex)].propertyFlags }
    }

    func testForcedDeviceReportsSeparateMemory() throws {
        let reported = device.instance.devices[device.info.index]
        XCTAssertFalse(device.info.unifiedMemory)
        XCTAssertEqual(device.info.separateMemoryForced, reported.unifiedMemory)
        XCTAssertTrue(device.info.summary.contains("memory: separate"), device.info.summary)
    }

    func testStorageBuffersAreDeviceLocalAndNeverMapped() throws {
        let storage = try DeviceBuffer(device: device, byteCount: 4096, label: "storage")
        XCTAssertNil(storage.mapped)
        XCTAssertNotEqual(flags(storage) & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT.rawValue, 0)
        let staging = try DeviceBuffer(device: device, byteCount: 4096, label: "staging", kind: .staging)
        XCTAssertNotNil(staging.mapped)
        XCTAssertNotEqual(flags(staging) & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT.rawValue, 0)
    }

    func testUploadAndDownloadGoThroughStaging() throws {
        let values = (0..<1000).map { Float($0) * 0.25 - 7 }
        let buffer = try DeviceBuffer(device: device, byteCount: 1200 * 4, label: "round trip")
        try buffer.fill(0x7FC0_0000)
        let before = device.staged
        try buffer.upload(values, at: 64)
        XCTAssertEqual(try buffer.download(Float.self, count: values.count, from: 64), values)
        XCTAssertEqual(device.staged.uploaded - before.uploaded, values.count * 4)
        XCTAssertEqual(device.staged.downloaded - before.downloaded, values.count * 4)
        XCTAssertTrue(try buffer.download(Float.self, count: 16).allSatisfy(\.isNaN), "bytes before the upload keep the fill")
    }

    func testTransfersLongerThanOneStagingBufferGoInPieces() throws {
        let count = DeviceBuffer.stagingChunkBytes / 4 + 3001
        let values = (0..<count).map { UInt32(truncatingIfNeeded: $0 &* 2_654_435_761) }
        let buffer = try DeviceBuffer(device: device, byteCount: (count + 8) * 4, label: "long")
        try buffer.upload(values, at: 32)
        XCTAssertEqual(try buffer.download(UInt32.self, count: count, from: 32), values)
        XCTAssertEqual(device.allocatedBytes, buffer.allocationSize, "staging buffers are freed after the transfer")
    }

    func testEnvironmentSettingForcesDiscrete() throws {
        let forced = ProcessInfo.processInfo.environment["LAYERSHARE_FORCE_DISCRETE"] == "1"
        let plain = try VulkanDevice(instance: device.instance, info: device.instance.devices[device.info.index])
        XCTAssertEqual(plain.info.unifiedMemory, device.instance.devices[device.info.index].unifiedMemory && !forced)
    }
}

final class HeapUsageTests: XCTestCase {
    /// A device-local heap and a host heap fill up separately.
    func testEachHeapFillsOnItsOwn() {
        var usage = HeapUsage(sizes: [1000, 100])
        XCTAssertNil(usage.reserve(950, heap: 0))
        XCTAssertNil(usage.reserve(100, heap: 1), "a nearly full heap 0 must not refuse heap 1")
        XCTAssertNotNil(usage.reserve(51, heap: 0))
        let refusal = usage.reserve(1, heap: 1)
        XCTAssertTrue(refusal?.contains("heap 1") == true && refusal?.contains("100 B already in use") == true, refusal ?? "nil")
        usage.release(950, heap: 0)
        XCTAssertNil(usage.reserve(1000, heap: 0))
        XCTAssertEqual(usage.used, [1000, 100])
    }
}
