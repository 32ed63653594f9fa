import XCTest
final class VulkanComputeTestsPlaceholder: XCTestCase { func testNothing() {} }
