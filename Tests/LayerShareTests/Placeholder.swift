import XCTest
final class LayerShareTestsPlaceholder: XCTestCase { func testNothing() {} }
