import XCTest
@testable import LayerShare

final class TasksStopTextTests: XCTestCase {
    /// Pieces are released once they cannot begin a stop string; the stop string never is.
    func testAStopSplitAcrossPiecesIsNeverReleased() {
        var watch = StopText(["</end>"])
        XCTAssertEqual(watch.append("Hello <"), "Hello ")
        XCTAssertEqual(watch.append("/en"), "")
        XCTAssertFalse(watch.stopped)
        XCTAssertEqual(watch.append("d> more"), "")
        XCTAssertTrue(watch.stopped)
        XCTAssertEqual(watch.append("later"), "")
        XCTAssertEqual(watch.finish(), "")
    }

    func testAFalseStartIsReleasedAndTheEarliestStopWins() {
        var watch = StopText(["ab", "c"])
        XCTAssertEqual(watch.append("xa"), "x")
        XCTAssertEqual(watch.append("x"), "ax")
        XCTAssertEqual(watch.append("1c2ab"), "1")
        XCTAssertTrue(watch.stopped)
    }

    func testNoStopsReleaseEverythingAndTheTailComesAtTheEnd() {
        var none = StopText(["", ""])
        XCTAssertEqual(none.append("abc"), "abc")
        var held = StopText(["xyz"])
        XCTAssertEqual(held.append("wx"), "w")
        XCTAssertEqual(held.finish(), "x")
    }
}
