import XCTest
final class ModelFormatsTestsPlaceholder: XCTestCase { func testNothing() {} }
